import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgedeploy.core.errors import ConfigError
from edgedeploy.exporter.converters.onnx import export_onnx, simplify_onnx
from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config
from edgedeploy.models.weights import build_model


@pytest.fixture(scope="module")
def small_model():
    model, _ = build_model(MobileNetV2Config(width=0.35, resolution=96, num_classes=10), "random")
    return model


@pytest.mark.parametrize("opset", [13, 17])
def test_export_and_simplify_keep_opset_names_and_numbers(tmp_path, small_model, opset):
    export_onnx(small_model, tmp_path / "raw.onnx", 96, opset=opset)
    stats = simplify_onnx(tmp_path / "raw.onnx", tmp_path / "simple.onnx")
    assert stats.opset == opset
    assert stats.nodes_after < stats.nodes_before
    model = onnx.load(str(tmp_path / "simple.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["logits"]
    # Conv+BN folded: no BatchNormalization survives, one Conv per conv layer (52).
    ops = [n.op_type for n in model.graph.node]
    assert "BatchNormalization" not in ops and ops.count("Conv") == 52
    x = np.random.default_rng(0).standard_normal((1, 3, 96, 96), dtype=np.float32)
    got = ort.InferenceSession(str(tmp_path / "simple.onnx")).run(None, {"input": x})[0]
    with torch.inference_mode():
        want = small_model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_fixed_batch_by_default_dynamic_on_request(tmp_path, small_model):
    export_onnx(small_model, tmp_path / "fixed.onnx", 96)
    export_onnx(small_model, tmp_path / "dyn.onnx", 96, dynamic_batch=True)
    fixed = ort.InferenceSession(str(tmp_path / "fixed.onnx")).get_inputs()[0].shape
    dyn = ort.InferenceSession(str(tmp_path / "dyn.onnx"))
    assert fixed == [1, 3, 96, 96]
    assert dyn.get_inputs()[0].shape[0] == "batch"
    out = dyn.run(None, {"input": np.zeros((4, 3, 96, 96), np.float32)})[0]
    assert out.shape == (4, 10)


def test_export_is_deterministic(tmp_path, small_model):
    export_onnx(small_model, tmp_path / "a.onnx", 96)
    export_onnx(small_model, tmp_path / "b.onnx", 96)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()


@pytest.mark.parametrize("opset", [9, 99])
def test_unsupported_opset(tmp_path, small_model, opset):
    with pytest.raises(ConfigError, match=f"opset {opset} is not supported"):
        export_onnx(small_model, tmp_path / "x.onnx", 96, opset=opset)
