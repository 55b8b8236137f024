"""TFLite targets on the real weights: conversion, precision, accuracy, offline guarantee, caching."""

import json

import numpy as np
import pytest

pytest.importorskip("onnx2tf", reason="needs the [tflite] extra")

from edgedeploy.core.errors import ConfigError, DataError  # noqa: E402
from edgedeploy.data.datasets import ImageFolder  # noqa: E402
from edgedeploy.exporter.pipeline import ExportRequest, export  # noqa: E402
from edgedeploy.measure.evaluate import evaluate  # noqa: E402
from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config  # noqa: E402
from edgedeploy.runtimes import LoadOptions, load_runner  # noqa: E402
from edgedeploy.runtimes.litert.graph import graph_summary as tflite_graph_summary  # noqa: E402

REFERENCE_TOP1 = 77.00
MAX_INT8_BYTES = 4.2e6


@pytest.fixture(scope="module")
def val_results(val_against_torch, tflite_fp32, tflite_int8):
    return {"torch": val_against_torch.torch, "fp32": val_against_torch(tflite_fp32.path),
            "int8": val_against_torch(tflite_int8.path)}


def test_fp32_matches_pytorch_on_val(val_results):
    assert abs(val_results["fp32"].top1 - val_results["torch"].top1) <= 0.2
    assert val_results["fp32"].agreement >= 99.0
    assert val_results["fp32"].max_abs_diff < 1e-3


def test_int8_accuracy_drop_and_agreement_on_val(val_results):
    drop = val_results["torch"].top1 - val_results["int8"].top1
    assert drop <= 0.5, f"int8 top-1 {val_results['int8'].top1} vs float {val_results['torch'].top1}"
    assert val_results["int8"].agreement >= 95.0
    assert abs(val_results["torch"].top1 - REFERENCE_TOP1) <= 0.3


def test_int8_is_small_and_integer_only(tflite_int8):
    assert tflite_int8.size_bytes <= MAX_INT8_BYTES
    summary = tflite_graph_summary(tflite_int8.path)
    assert summary["integer_only"] and summary["float_ops"] == []
    assert summary["ops"]["CONV_2D"] == 35 and summary["ops"]["DEPTHWISE_CONV_2D"] == 17
    assert "float32" not in summary["tensor_dtypes"]


def test_int8_manifest_records_nhwc_quantized_input_and_calibration(tflite_int8):
    m = json.loads(tflite_int8.manifest.read_text())
    assert m["input"]["layout"] == "NHWC" and m["input"]["shape"] == [1, 224, 224, 3]
    assert m["input"]["dtype"] == "int8"
    q = m["input"]["quantization"]
    # Inputs span [-1, 1] after mean/std 0.5: scale 2/255.
    assert q["scale"] == pytest.approx(2 / 255, rel=1e-3)
    assert m["output"]["quantization"]["scale"] > 0
    calib = m["export"]["calibration"]
    assert calib["images"] == 200 and calib["classes"] == 185 and calib["sampling"] == "class-stratified"
    assert m["export"]["integer_only"] is True
    for tool in ("tensorflow", "onnx2tf", "ai-edge-litert"):
        assert tool in m["tools"]
    log = tflite_int8.path.with_name(tflite_int8.path.name + ".log")
    assert log.is_file() and log.stat().st_size > 0


def test_conversion_never_touches_the_network(tmp_path, monkeypatch, data_root, no_network):
    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path / "cold-cache"))  # onnx2tf must run, not be reused
    r = export(ExportRequest(target="tflite-fp32", weights="random", out_dir=tmp_path / "out", threads=2,
                             config=MobileNetV2Config(width=0.35, resolution=96), parity_images=4))
    assert r.path.is_file()
    log = r.path.with_name(r.path.name + ".log").read_text()
    assert "reused cached conversion" not in log


def test_second_identical_export_reuses_cached_intermediates(tflite_int8, tmp_path):
    again = export(ExportRequest(target="tflite-int8", out_dir=tmp_path, threads=2))
    assert again.sha256 == tflite_int8.sha256
    log = again.path.with_name(again.path.name + ".log").read_text()
    assert "reused cached conversion" in log and "reused cached result" in log


def test_uint8_io_takes_raw_pixels(tmp_path, val_against_torch):
    # Parity on 8 images (still checked): the agreement that matters is measured on 100 val images below.
    r = export(ExportRequest(target="tflite-int8", io_dtype="uint8", out_dir=tmp_path, threads=2, parity_images=8))
    m = json.loads(r.manifest.read_text())
    assert m["input"]["dtype"] == "uint8" and m["input"]["quantization"] == {"scale": 1.0, "zero_point": 0}
    assert m["preprocessing"]["raw_pixels"] is True and m["export"]["raw_pixel_input"] is True
    # The first 100 val images, against the session's PyTorch logits on them.
    res = val_against_torch(r.path, limit=100)
    print(f"uint8-IO tflite-int8 on {res.n} val images: agreement {res.agreement}")
    assert res.n == 100 and res.agreement >= 93.0


def test_float_io_int8_has_quantize_only_at_the_boundary(tmp_path):
    # 50 calibration images (the graph's structure does not depend on how many): still parity-checked.
    r = export(ExportRequest(target="tflite-int8", io_dtype="float32", out_dir=tmp_path, threads=2, parity_images=8,
                             calib_size=50))
    print(f"float-IO tflite-int8 (50 calibration images): parity {r.parity}")
    summary = tflite_graph_summary(r.path)
    assert set(summary["float_ops"]) == {"QUANTIZE", "DEQUANTIZE"}
    assert json.loads(r.manifest.read_text())["input"]["quantization"] is None


@pytest.mark.parametrize("target,max_mib", [("tflite-fp16", 7.0), ("tflite-dynamic", 3.8)])
def test_fp16_and_dynamic_targets(tmp_path, target, max_mib):
    r = export(ExportRequest(target=target, out_dir=tmp_path, threads=2, parity_images=16))
    assert r.size_bytes <= max_mib * 2**20
    assert r.parity["agreement"] >= 93.0


def test_xnnpack_can_be_disabled(tflite_fp32):
    runner = load_runner(str(tflite_fp32.path), LoadOptions(threads=1, xnnpack=False))
    assert runner.execution() == {"delegate": "none (builtin kernels)"}
    x = np.zeros((1, 224, 224, 3), np.float32)
    with_xnn = load_runner(str(tflite_fp32.path), LoadOptions(threads=1))
    np.testing.assert_allclose(runner.predict(x), with_xnn.predict(x), atol=1e-3)


def test_google_reference_models_load_without_manifest(data_root, val_dir):
    ref = data_root / "reference" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"
    runner = load_runner(str(ref), LoadOptions(threads=2))
    assert runner.io.input.dtype == "uint8" and runner.io.preprocessing.raw_pixels
    assert runner.io.output.background_class and runner.io.output.num_classes == 1000
    res = evaluate(runner, ImageFolder.open(val_dir).subset(100))
    assert res.top1 >= 75.0


@pytest.mark.parametrize("name", ["mobilenet_v2_1.0_224_quant.tflite", "tf2_mobilenet_v2_1.0_224_ptq.tflite"])
def test_inspect_google_int8_models(data_root, name):
    from edgedeploy.runtimes.litert.inspector import inspect as inspect_tflite

    info = inspect_tflite(str(data_root / "reference" / name), LoadOptions())
    assert info["integer_only"] is True
    assert info["inputs"][0]["dtype"] == "uint8" and info["outputs"][0]["shape"] == [1, 1001]
    assert info["ops"]["CONV_2D"] >= 35 and info["ops"]["DEPTHWISE_CONV_2D"] == 17


def test_io_dtype_only_for_integer_targets(tmp_path):
    with pytest.raises(ConfigError, match="io dtype uint8 does not apply to tflite-fp32"):
        export(ExportRequest(target="tflite-fp32", io_dtype="uint8", out_dir=tmp_path))


def test_tflite_needs_a_fixed_batch(tmp_path):
    with pytest.raises(ConfigError, match="fixed batch of 1"):
        export(ExportRequest(target="tflite-fp32", weights="random", dynamic_batch=True, out_dir=tmp_path,
                             config=MobileNetV2Config(width=0.35, resolution=96), parity_images=2))
    assert not any(p.suffix == ".tflite" for p in tmp_path.iterdir())


def test_int8_without_any_calibration_images_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEDEPLOY_DATA", str(tmp_path / "none"))
    with pytest.raises(DataError, match="tflite-int8 needs calibration images: pass --calib DIR"):
        export(ExportRequest(target="tflite-int8", weights="random", out_dir=tmp_path / "out",
                             config=MobileNetV2Config(width=0.35, resolution=96)))


def test_cli_tflite_export_keeps_stdout_pure_json_and_terminal_quiet(tmp_path, tflite_fp32):
    import os
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "edgedeploy", "export", "--target", "tflite-fp32", "--out", str(tmp_path),
         "--parity-images", "4", "--threads", "2", "--json"],
        capture_output=True, text=True, timeout=300, env=os.environ.copy(),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["target"] == "tflite-fp32" and out["log"].endswith(".tflite.log")
    # TensorFlow, onnx2tf and LiteRT chatter goes to the log, not the terminal.
    assert "XNNPACK" not in proc.stderr and "tensorflow" not in proc.stderr.lower()


def test_cli_int8_export_from_a_calibration_definition_is_identical(tmp_path, tflite_int8):
    from pathlib import Path

    from click.testing import CliRunner

    from edgedeploy.cli.app import cli

    definition = Path(__file__).resolve().parents[4] / "calibration" / "imagenet-subset-calib-200.json"
    # Parity on 8 images: the artifact's bytes (not its parity record) are what must be identical.
    result = CliRunner().invoke(cli, ["export", "--target", "tflite-int8", "--calib", str(definition),
                                      "--parity-images", "8", "--out", str(tmp_path), "--threads", "2", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    # The definition pins the same 200 images the folder yields: same calibration, same bytes.
    assert out["sha256"] == tflite_int8.sha256
    assert out["calibration"]["images"] == 200 and out["io_dtype"] == "int8" and out["integer_only"] is True
