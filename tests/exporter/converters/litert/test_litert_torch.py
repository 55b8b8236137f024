"""The direct TFLite route: litert-torch from the nn.Module, AI Edge Quantizer for int8 and 16x8."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("litert_torch", reason="needs the [litert-torch] extra")

from edgedeploy.cli.app import cli  # noqa: E402
from edgedeploy.core.errors import ConfigError  # noqa: E402
from edgedeploy.exporter.build_cache import cached_export  # noqa: E402
from edgedeploy.exporter.pipeline import ExportRequest, export  # noqa: E402
from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config  # noqa: E402
from edgedeploy.runtimes.litert.graph import graph_ops, graph_summary  # noqa: E402

SMALL = MobileNetV2Config(width=0.35, resolution=96)
# The sample weights at 96 px: real predictions, a quick conversion.
SAMPLE_96 = MobileNetV2Config(resolution=96)


def weight_scales(path) -> dict[str, int]:
    """{weighted op's output name: how many scales its int8 weights carry}."""
    ops, tensors = graph_ops(path)
    by_index = {t["index"]: t for t in tensors}
    return {by_index[op["outputs"][0]]["name"]: len(by_index[op["inputs"][1]]["quantization_parameters"]["scales"])
            for op in ops if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")}


@pytest.fixture(scope="module")
def val_results(val_against_torch, litert_int8):
    return {"torch": val_against_torch.torch, "int8": val_against_torch(litert_int8.path)}


def test_fp32_straight_from_pytorch_nhwc_offline(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path / "cold-cache"))
    r = export(ExportRequest(target="litert-fp32", weights="random", config=SMALL, out_dir=tmp_path, threads=2,
                             parity_images=4))
    assert r.parity["max_abs_diff"] < 1e-3 and r.parity["agreement"] == 100.0
    m = json.loads(r.manifest.read_text())
    assert m["input"]["layout"] == "NHWC" and m["input"]["shape"] == [1, 96, 96, 3]
    # No ONNX in this route: no opset, no onnxsim, the exporter is torch.export.
    assert m["export"]["exporter"] == "torch.export" and "opset" not in m["export"]
    assert "onnxsim" not in m["tools"] and "litert-torch" in m["tools"]
    assert m["precision"]["verified"] and m["precision"]["weights"] == {"float32": 53}
    ops = [op["op_name"] for op in graph_ops(r.path)[0]]
    assert ops[0] != "TRANSPOSE" and ops.count("TRANSPOSE") == 1  # only before the MEAN (torch's NCHW mean)
    log = r.path.with_name(r.path.name + ".log").read_text()
    assert "DONE" in log  # litert-torch's progress lines went to the log, not the terminal


@pytest.fixture(scope="module")
def nchw_build(tmp_path_factory, data_root):
    """An NCHW litert-fp32 build through the build cache: (request, result, cached). The layout test
    reads the artifact; the cache test re-exports the same request and must get it back."""
    request = ExportRequest(target="litert-fp32", weights="random", config=SMALL,
                            out_dir=tmp_path_factory.mktemp("nchw"), threads=2, parity_images=4, input_layout="nchw")
    first, cached = cached_export(request)
    return request, first, cached


def test_nchw_input_layout_adds_the_transpose(nchw_build):
    _, r, _ = nchw_build
    path = Path(r["path"])
    m = json.loads(Path(r["manifest"]).read_text())
    assert m["input"]["layout"] == "NCHW" and m["input"]["shape"] == [1, 3, 96, 96]
    assert [op["op_name"] for op in graph_ops(path)[0]][0] == "TRANSPOSE"
    assert r["parity"]["max_abs_diff"] < 1e-3


def test_int8_accuracy_and_agreement_on_val(val_results):
    # Measured: 76.33 (-0.67, four images more than the 0.5 bar), agreement 96.17%; the
    # quantizer's moving-average calibration gives 77.17 but only 94.83% agreement (docs/targets.md).
    drop = val_results["torch"].top1 - val_results["int8"].top1
    assert drop <= 1.0, f"int8 top-1 {val_results['int8'].top1} vs float {val_results['torch'].top1}"
    assert val_results["int8"].agreement >= 95.0


def test_int8_is_integer_with_per_channel_weights(litert_int8):
    summary = graph_summary(litert_int8.path)
    assert summary["integer_only"] and summary["ops"]["CONV_2D"] == 35
    assert litert_int8.size_bytes <= 4.3e6
    m = json.loads(litert_int8.manifest.read_text())
    assert m["precision"]["verified"] and m["precision"]["weights"] == {"int8": 53}
    assert m["export"]["weights"] == "int8 per-channel" and m["export"]["calibration"]["images"] == 200
    assert m["input"]["dtype"] == m["export"]["io_dtype"]
    scales = weight_scales(litert_int8.path)
    assert min(scales.values()) > 1


def test_cached_re_export_is_reused(tmp_path, nchw_build):
    request, first, cached = nchw_build
    again, cached_again = cached_export(request.replace(out_dir=tmp_path / "b"))
    assert not cached and cached_again and again["sha256"] == first["sha256"]
    assert Path(again["path"]).read_bytes() == Path(first["path"]).read_bytes()


def test_a16w8_with_a_kept_float_layer(tmp_path, data_root):
    r = export(ExportRequest(target="litert-a16w8", config=SAMPLE_96, out_dir=tmp_path, threads=2, calib_size=50,
                             keep_float=("features.18.2",)))
    print(f"litert-a16w8 at 96 px, 50 calibration images: parity {r.parity}")
    m = json.loads(r.manifest.read_text())
    assert m["precision"]["verified"] and m["export"]["activations"] == "int16"
    assert m["precision"]["float_layers"] == ["features.18.2"]
    scales = weight_scales(r.path)
    assert sorted(scales.values()).count(0) == 1 and min(n for n in scales.values() if n) > 1  # the kept layer: float
    assert r.parity["agreement"] >= 90.0
    _, tensors = graph_ops(r.path)
    assert "int16" in {np.dtype(t["dtype"]).name for t in tensors}


@pytest.mark.long
def test_per_tensor_weights_have_one_scale_and_mobilenet_v2_fails_parity(tmp_path, data_root):
    """Per-tensor MobileNetV2 loses everything (docs/int8.md): written when asked, refused by the quantization cost check
    (the conversion itself is faithful: it is the quantization that collapses)."""
    request = ExportRequest(target="litert-int8", config=SAMPLE_96, out_dir=tmp_path, threads=2, calib_size=16,
                            weight_granularity="per-tensor", parity_min_agreement=0, parity_images=32)
    r = export(request)
    print(f"per-tensor litert-int8 at 96 px, 16 calibration images: parity {r.parity}")
    assert set(weight_scales(r.path).values()) == {1} and r.parity["agreement"] <= 25.0
    result = CliRunner().invoke(cli, ["export", "--target", "litert-int8", "--resolution", "96", "--calib-size", "16",
                                      "--weight-granularity", "per-tensor", "--parity-images", "32",
                                      "--out", str(tmp_path / "refused")])
    assert result.exit_code == 4 and "quantization cost" in result.output and "below the 50%" in result.output
    assert r.parity["fidelity"]["sqnr_db"] >= 10.0


def test_unknown_kept_layer_names_a_real_one(tmp_path, data_root):
    with pytest.raises(ConfigError, match=r"no layer named 'features\.99'.*e\.g\. 'features\.0\.0'"):
        export(ExportRequest(target="litert-int8", weights="random", config=SMALL, out_dir=tmp_path,
                             keep_float=("features.99",)))
    assert list(tmp_path.iterdir()) == [] or not any(p.suffix == ".tflite" for p in tmp_path.iterdir())


def test_layout_and_granularity_are_checked_against_the_target(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["export", "--target", "onnx", "--input-layout", "nchw", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "input layout nchw does not apply to onnx" in result.output
    result = runner.invoke(cli, ["export", "--target", "executorch-fp32", "--weight-granularity", "per-tensor"])
    assert result.exit_code == 2 and "weight granularity per-tensor does not apply to executorch-fp32" in result.output
    result = runner.invoke(cli, ["export", "--target", "litert-fp32", "--dynamic-batch"])
    assert result.exit_code == 2 and "fixed batch of 1" in result.output
