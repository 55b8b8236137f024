"""diagnose on real artifacts: it names the layers a damaged int8 export broke, and keeping
them in float (--keep-float) wins back the accuracy."""

import json

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.core.errors import ConfigError
from edgedeploy.diagnose.analysis import diagnose
from edgedeploy.exporter.pipeline import ExportRequest, export


@pytest.fixture(scope="module")
def blank_calibrated(tmp_path_factory, blank_images, data_root):
    """tflite-int8 calibrated on 8 uniform grey images: its input range is ~one grey level wide."""
    pytest.importorskip("onnx2tf", reason="needs the [tflite] extra")
    return export(ExportRequest(target="tflite-int8", calib_dir=blank_images, calib_size=8, parity_min_agreement=0,
                                out_dir=tmp_path_factory.mktemp("blank"), threads=2, parity_images=4))


@pytest.fixture(scope="module")
def blank_diagnosis(blank_calibrated, tflite_fp32, val_dir):
    return diagnose(str(blank_calibrated.path), str(tflite_fp32.path), val_dir, images=32, threads=2)


def test_diagnose_names_the_input_range_of_a_blank_calibrated_model(blank_diagnosis):
    first = blank_diagnosis["layers"][0]
    # The model's input quantizer (the first PAD's range) was calibrated on grey: it clips most pixels.
    assert first["op"] == "PAD" and first["clipped_pct"] > 50 and first["range_sqnr_db"] < 3
    assert blank_diagnosis["diagnosis"].startswith(f"{first['name']}: its int8 range clips")
    assert blank_diagnosis["output"]["agreement"] < 10
    suggested = blank_diagnosis["suggestions"]["layers"]
    # The range problem is at a tensor: the layer that writes it and the layer that reads it stay float.
    assert suggested[:2] == [first["name"], blank_diagnosis["layers"][1]["name"]]
    assert blank_diagnosis["suggestions"]["target"] == "tflite-int8"


def test_keep_float_on_the_suggestion_recovers_at_least_half_the_loss(
        tmp_path, blank_calibrated, blank_diagnosis, blank_images, tflite_int8, val_against_torch):
    suggested = tuple(blank_diagnosis["suggestions"]["layers"])
    fixed = export(ExportRequest(target="tflite-int8", calib_dir=blank_images, calib_size=8, parity_min_agreement=0,
                                 keep_float=suggested, out_dir=tmp_path, threads=2, parity_images=4))
    float_top1 = val_against_torch.torch.top1
    damaged_top1 = val_against_torch(blank_calibrated.path).top1
    fixed_top1 = val_against_torch(fixed.path).top1
    print(f"float {float_top1}, blank-calibrated int8 {damaged_top1}, with --keep-float {fixed_top1}; "
          f"size {blank_calibrated.size_bytes} -> {fixed.size_bytes}")
    assert damaged_top1 < 5
    assert fixed_top1 - damaged_top1 >= 0.5 * (float_top1 - damaged_top1)
    manifest = json.loads(fixed.manifest.read_text())
    precision = manifest["precision"]
    assert precision["verified"] and set(precision["float_layers"]) <= set(suggested)
    assert precision["weights"]["int8"] >= 49
    assert manifest["input"]["dtype"] == "float32"  # TFLite's selective quantization keeps float IO
    # The cost: the float layers' weights are 4x larger (the classifier dominates).
    assert tflite_int8.size_bytes < fixed.size_bytes < 2.5 * tflite_int8.size_bytes


def test_a_healthy_int8_model_has_good_ranges_everywhere(tflite_int8, tflite_fp32, val_dir):
    result = diagnose(str(tflite_int8.path), str(tflite_fp32.path), val_dir, images=8)
    ranges = [e["range_sqnr_db"] for e in result["layers"]]
    assert min(ranges) > 20 and result["output"]["agreement"] >= 87.5
    assert all(e["weights_sqnr_db"] is None or e["weights_sqnr_db"] > 40 for e in result["layers"])
    assert result["layers_compared"] == 69 and result["layers_unmatched"] == 0


def test_onnx_runtime_int8_is_diagnosed_by_tensor_name(onnx_int8, onnx_artifact, val_dir):
    result = diagnose(str(onnx_int8.path), str(onnx_artifact.path), val_dir, images=4)
    assert result["layers_compared"] >= 60 and result["suggestions"]["target"] == "onnx-int8"
    assert min(e["range_sqnr_db"] for e in result["layers"]) > 20
    assert all(e["weights_sqnr_db"] is None or e["weights_sqnr_db"] > 40 for e in result["layers"])
    assert result["suggestions"]["layers"][0].startswith("/features/")


@pytest.mark.long
def test_openvino_quantile_ranges_are_found_and_fixed(tmp_path, openvino_fp32, val_dir, val_against_torch):
    """NNCF's mean-quantile range estimator clips ReLU6 outputs late in the network (~50% top-1 here):
    diagnose finds those ranges, and NNCF's ignored scope on its suggestion wins the accuracy back."""
    pytest.importorskip("nncf", reason="needs the [openvino] extra")
    request = dict(target="openvino-int8", calib_method="mean-quantile", calib_size=50, threads=2,
                   parity_images=4, parity_min_agreement=0)
    damaged = export(ExportRequest(out_dir=tmp_path / "damaged", **request))
    result = diagnose(str(damaged.path), str(openvino_fp32.path), val_dir, images=16)
    assert result["layers_compared"] == 153 and result["suggestions"]["target"] == "openvino-int8"
    worst = max(result["layers"], key=lambda e: e["local_noise"])
    assert worst["op"] == "Clamp" and worst["clipped_pct"] > 1 and worst["range_sqnr_db"] < 20
    suggested = tuple(result["suggestions"]["layers"])
    fixed = export(ExportRequest(out_dir=tmp_path / "fixed", keep_float=suggested, **request))
    float_top1 = val_against_torch.torch.top1
    damaged_top1, fixed_top1 = val_against_torch(damaged.path).top1, val_against_torch(fixed.path).top1
    print(f"openvino-int8 mean-quantile: {damaged_top1} -> {fixed_top1} with --keep-float (float {float_top1}); "
          f"size {damaged.size_bytes} -> {fixed.size_bytes}")
    assert damaged_top1 < 65 and fixed_top1 - damaged_top1 >= 0.5 * (float_top1 - damaged_top1)
    precision = json.loads(fixed.manifest.read_text())["precision"]
    assert precision["verified"] and precision["float_layers"] and set(precision["float_layers"]) <= set(suggested)


def test_models_of_two_runtimes_are_refused(onnx_artifact, tflite_int8, val_dir):
    with pytest.raises(ConfigError, match="diagnose compares layers within one runtime"):
        diagnose(str(tflite_int8.path), str(onnx_artifact.path), val_dir)


def test_cli_json_table_and_plot(tmp_path, tflite_int8, tflite_fp32, val_dir):
    plot = tmp_path / "layers.png"
    args = ["diagnose", str(tflite_int8.path), "--reference", str(tflite_fp32.path), "--data", str(val_dir),
            "--images", "4", "--plot", str(plot)]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["images"] == 4 and out["plot"] == str(plot) and plot.read_bytes()[:4] == b"\x89PNG"
    human = CliRunner().invoke(cli, args)
    assert human.exit_code == 0 and "range dB" in human.output
    assert "suggestion  export --target tflite-int8 --keep-float" in human.output


@pytest.mark.parametrize("target, layer, message", [
    ("onnx-int8", "nope", "--keep-float: no node named 'nope' in this model"),
    ("onnx", "x", "--keep-float does not apply to onnx"),
])
def test_keep_float_errors(tmp_path, data_root, target, layer, message):
    with pytest.raises(ConfigError, match=message):
        export(ExportRequest(target=target, out_dir=tmp_path, keep_float=(layer,), calib_size=25))
    assert not list(tmp_path.glob("*.onnx"))


def test_keep_float_tflite_keeps_float_io(tmp_path):
    with pytest.raises(ConfigError, match="tflite-int8 with --keep-float has float32 IO"):
        export(ExportRequest(target="tflite-int8", io_dtype="uint8", out_dir=tmp_path, keep_float=("x",)))


def test_a_float_model_against_itself_has_nothing_to_suggest(tflite_fp32, val_dir):
    result = diagnose(str(tflite_fp32.path), str(tflite_fp32.path), val_dir, images=2)
    assert result["diagnosis"] == "no layer adds measurable quantization error"
    assert result["suggestions"]["layers"] == [] and all(e["sqnr_db"] == 150.0 for e in result["layers"])
