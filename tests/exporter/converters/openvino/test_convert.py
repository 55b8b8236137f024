"""OpenVINO targets on the real weights: IR pair, precision, accuracy, accuracy control, bad input."""

import json
import shutil

import pytest

pytest.importorskip("openvino", reason="needs the [openvino] extra")
pytest.importorskip("nncf", reason="needs the [openvino] extra")

from edgedeploy.core.errors import ConfigError, InputFileError  # noqa: E402
from edgedeploy.core.hashing import (
    sha256_file,  # noqa: E402
    with_digest,  # noqa: E402
)
from edgedeploy.core.manifest import DIGEST_KEY  # noqa: E402
from edgedeploy.data.datasets import ImageFolder  # noqa: E402
from edgedeploy.exporter.pipeline import ExportRequest, export  # noqa: E402
from edgedeploy.measure.evaluate import evaluate  # noqa: E402
from edgedeploy.models.architecture import Architecture
from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config  # noqa: E402
from edgedeploy.runtimes import LoadOptions, load_runner  # noqa: E402
from edgedeploy.runtimes.openvino.inspector import inspect as inspect_openvino  # noqa: E402


# The session's exports (tests/conftest.py), shared with test_pipeline and diagnose.
@pytest.fixture(scope="module")
def ov_fp32(openvino_fp32):
    return openvino_fp32


@pytest.fixture(scope="module")
def ov_int8(openvino_int8):
    return openvino_int8


@pytest.fixture(scope="module")
def val_results(val_against_torch, ov_fp32, ov_int8):
    return {"torch": val_against_torch.torch, "fp32": val_against_torch(ov_fp32.path),
            "int8": val_against_torch(ov_int8.path)}


def test_fp32_matches_pytorch_on_val(val_results):
    assert abs(val_results["fp32"].top1 - val_results["torch"].top1) <= 0.2
    assert val_results["fp32"].agreement >= 99.0


def test_int8_drop_within_0_7_points(val_results):
    assert val_results["torch"].top1 - val_results["int8"].top1 <= 0.7
    assert val_results["int8"].agreement >= 90.0


def test_ir_pair_and_manifest(ov_fp32):
    xml, bin_ = ov_fp32.path, ov_fp32.path.with_suffix(".bin")
    assert xml.is_file() and bin_.is_file()
    m = json.loads(ov_fp32.manifest.read_text())
    assert {f["name"]: f["sha256"] for f in m["files"]} == {xml.name: sha256_file(xml), bin_.name: sha256_file(bin_)}
    assert m["size_bytes"] == xml.stat().st_size + bin_.stat().st_size
    assert m["input"]["name"] == "input" and m["input"]["layout"] == "NCHW"
    info = inspect_openvino(str(xml), LoadOptions())
    assert info["inputs"][0]["name"] == "input" and info["convolutions"] == 52
    assert info["quantized_convolutions"] == 0


def test_int8_quantizes_every_convolution(ov_int8):
    info = inspect_openvino(str(ov_int8.path), LoadOptions())
    assert info["quantized_convolutions"] == info["convolutions"] == 52
    m = json.loads(ov_int8.manifest.read_text())
    assert m["precision"]["verified"] and m["precision"]["weights"] == {"int8": 53}  # 52 convolutions + MatMul
    assert m["export"]["nncf"]["preset"] == "mixed" and m["export"]["calibration"]["images"] == 200
    assert m["tools"]["nncf"] and m["tools"]["openvino"]


def test_fp16_compresses_weights(openvino_fp16, ov_fp32):
    r = openvino_fp16
    assert r.size_bytes < 0.55 * ov_fp32.size_bytes
    assert r.parity["agreement"] >= 95.0


def test_inference_precision_is_explicit_and_reported(ov_fp32):
    runner = load_runner(str(ov_fp32.path), LoadOptions(threads=2))
    execution = runner.execution()
    assert execution["inference_precision"] == "f32" and execution["performance_hint"] == "LATENCY"
    assert execution["threads"] == 2
    auto = load_runner(str(ov_fp32.path), LoadOptions(threads=1, inference_precision="auto")).execution()
    assert auto["inference_precision"] in ("f32", "bf16", "f16")  # the plugin's own choice, reported


@pytest.mark.long
def test_accuracy_control_keeps_the_drop_within_max_drop(tmp_path, val_dir, synsets):
    val = tmp_path / "val"
    for path, _ in ImageFolder.open(val_dir).subset(120, seed=3).files:
        (val / path.parent.name).mkdir(parents=True, exist_ok=True)
        (val / path.parent.name / path.name).symlink_to(path)
    shutil.copy(synsets, tmp_path / "synsets.txt")  # found beside the folder: real class indices
    # The sample weights at 128 px (a third of the pixels of 224): plain PTQ loses more there, so NNCF must
    # rank the quantizers and revert some to float to meet max_drop.
    r = export(ExportRequest(target="openvino-int8", config=MobileNetV2Config(resolution=128), out_dir=tmp_path / "out",
                             threads=2, max_drop=0.5, val_dir=val, calib_size=100, parity_images=8))
    control = json.loads(r.manifest.read_text())["export"]["accuracy_control"]
    assert control == {"max_drop": 0.5, "val": str(val), "val_images": 120}
    ds = ImageFolder.open(val)
    float_top1 = evaluate(load_runner("sample", LoadOptions(threads=2, architecture=Architecture(resolution=128))), ds).top1
    int8_top1 = evaluate(load_runner(str(r.path), LoadOptions(threads=2)), ds).top1
    log = r.path.with_name(r.path.name + ".log").read_text().splitlines()
    # Measured: 7.5 points lost before accuracy control, 11 of 64 operations reverted, float 60.0 = int8 60.0.
    print(f"accuracy control at 128 px: float {float_top1}, int8 {int8_top1};",
          *dict.fromkeys(line.strip() for line in log if "drop:" in line or "were reverted" in line), sep="\n")
    assert float_top1 - int8_top1 <= 0.5 + 1e-9


def test_calibration_method_is_nncf_range_estimator(tmp_path, data_root):
    r = export(ExportRequest(target="openvino-int8", calib_method="minmax", calib_size=50, out_dir=tmp_path,
                             threads=2, parity_images=8))
    m = json.loads(r.manifest.read_text())
    assert m["export"]["calib_method"] == "minmax" and m["precision"]["verified"]
    assert r.parity["agreement"] >= 85.0


def test_option_errors(tmp_path):
    with pytest.raises(ConfigError, match="max drop \\(an accuracy requirement\\) does not apply to openvino-fp32"):
        export(ExportRequest(target="openvino-fp32", max_drop=1.0, out_dir=tmp_path))
    with pytest.raises(ConfigError, match="--max-drop needs --val DIR"):
        export(ExportRequest(target="openvino-int8", max_drop=1.0, out_dir=tmp_path, calib_size=10, parity_images=2))


def test_corrupt_and_incomplete_ir(tmp_path, ov_fp32):
    xml = tmp_path / "m.xml"
    shutil.copy(ov_fp32.path, xml)
    with pytest.raises(InputFileError, match="weights file m.bin is missing beside it"):
        load_runner(str(xml), LoadOptions())
    xml.with_suffix(".bin").write_bytes(b"\0" * 100)  # truncated weights
    with pytest.raises(InputFileError, match="OpenVINO cannot read it|cannot compile it"):
        load_runner(str(xml), LoadOptions(mean=(0.5,) * 3, std=(0.5,) * 3))
    xml.write_text("<net><broken")
    with pytest.raises(InputFileError, match="OpenVINO cannot read it"):
        load_runner(str(xml), LoadOptions())


def test_ir_whose_input_does_not_match_its_manifest(tmp_path, ov_fp32):
    for f in (ov_fp32.path, ov_fp32.path.with_suffix(".bin"), ov_fp32.manifest):
        shutil.copy(f, tmp_path / f.name)
    manifest = tmp_path / ov_fp32.manifest.name
    data = json.loads(manifest.read_text())
    data["input"]["shape"] = [1, 3, 160, 160]
    manifest.write_text(json.dumps(with_digest(data, DIGEST_KEY)))  # consistent: the IO check, not the digest, fails
    with pytest.raises(InputFileError, match="manifest input spec does not match the model's input"):
        load_runner(str(tmp_path / ov_fp32.path.name), LoadOptions())


def test_nncf_failure_is_one_line_with_the_log_kept(tmp_path, monkeypatch, data_root):
    import logging

    import nncf

    from edgedeploy.core.errors import ConversionError

    def broken_quantize(*_args, **_kwargs):
        logging.getLogger("nncf").error("statistics collection failed on node /features/features.3/conv")
        raise RuntimeError("Could not collect statistics\n" + "  frame\n" * 200)

    monkeypatch.setattr(nncf, "quantize", broken_quantize)
    with pytest.raises(ConversionError) as err:
        export(ExportRequest(target="openvino-int8", out_dir=tmp_path, calib_size=10, parity_images=2, threads=1))
    message = str(err.value)
    assert "\n" not in message and len(message) < 800
    assert "NNCF quantization failed (RuntimeError: Could not collect statistics" in message
    log = tmp_path / "mobilenet_v2_1.0_224_int8.xml.log"
    assert f"(log: {log})" in message and "statistics collection failed" in log.read_text()
    assert not any(p.suffix in (".xml", ".bin") for p in tmp_path.iterdir())
    # Chained down to NNCF's own exception, for --debug.
    assert isinstance(err.value.__cause__.__cause__, RuntimeError)
