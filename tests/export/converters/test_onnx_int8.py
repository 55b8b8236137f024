"""onnx-int8: ONNX Runtime static quantization (QDQ, per-channel) on the real weights."""

import json
from collections import Counter

import onnx
import pytest

from edgedeploy.backends import LoadOptions, load_runner
from edgedeploy.core.errors import ConfigError
from edgedeploy.export.pipeline import ExportRequest, export

# onnx_int8: the session fixture (tests/conftest.py), also the one test_pipeline checks.


def test_quantization_parameters_cost_at_most_0_7_points(onnx_int8, val_against_torch):
    """The QDQ model's own numbers, executed as simulated quantization (no int8 kernel fusion).

    This isolates what the quantizer decided (scales, zero points, per-channel weights)
    from the CPU's int8 kernels; see the next test and export/converters/onnx_int8.py.
    """
    import onnxruntime as ort

    from edgedeploy.backends.onnxruntime.runner import OnnxRuntimeRunner

    runner = load_runner(str(onnx_int8.path), LoadOptions(threads=2))
    assert isinstance(runner, OnnxRuntimeRunner)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    runner.session = ort.InferenceSession(str(onnx_int8.path), so, providers=["CPUExecutionProvider"])
    res = val_against_torch(runner=runner)
    assert val_against_torch.torch.top1 - res.top1 <= 0.7
    assert res.agreement >= 90.0


def test_int8_kernels_on_this_cpu_stay_within_4_points(onnx_int8, val_against_torch):
    """ORT's fused int8 kernels as deployed. On AVX2 without VNNI, U8S8 saturates: 73.50 measured."""
    res = val_against_torch(onnx_int8.path)
    assert val_against_torch.torch.top1 - res.top1 <= 4.0


def test_qdq_graph_with_per_channel_int8_weights(onnx_int8):
    model = onnx.load(str(onnx_int8.path))
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["Conv"] == 52 and ops["QuantizeLinear"] >= 52 and ops["DequantizeLinear"] >= 104
    inits = {i.name: i for i in model.graph.initializer}
    weight_dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
                 and inits[n.input[0]].data_type == onnx.TensorProto.INT8 and len(inits[n.input[0]].dims) == 4]
    assert len(weight_dq) == 52
    # Per-channel: one scale per output channel.
    assert all(len(inits[n.input[1]].dims) == 1 and inits[n.input[1]].dims[0] > 1 for n in weight_dq)
    m = json.loads(onnx_int8.manifest.read_text())
    assert m["export"]["format"] == "QDQ" and m["export"]["calib_method"] == "minmax"
    assert onnx_int8.size_bytes < 4.5e6


def test_percentile_calibration_is_selectable(tmp_path, data_root):
    r = export(ExportRequest(target="onnx-int8", calib_method="percentile", calib_size=50, out_dir=tmp_path,
                             threads=2, parity_images=8))
    assert json.loads(r.manifest.read_text())["export"]["calib_method"] == "percentile"
    assert r.parity["agreement"] >= 85.0


def test_calib_method_only_where_offered(tmp_path):
    with pytest.raises(ConfigError, match="calibration method entropy does not apply to tflite-int8"):
        export(ExportRequest(target="tflite-int8", calib_method="entropy", out_dir=tmp_path))
