import shutil

import numpy as np
import pytest

from edgedeploy.core.errors import ConfigError, InputFileError
from edgedeploy.exporter.pipeline import ExportRequest, export
from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config
from edgedeploy.runtimes import RUNTIMES, LoadOptions, load_runner, runtime_for


def test_runtime_is_chosen_by_suffix_or_weights_name():
    assert runtime_for("model.onnx").name == "onnxruntime"
    assert runtime_for("w.pth").name == "torch"
    assert runtime_for("sample").name == "torch"
    with pytest.raises(ConfigError, match="unknown model format '.caffemodel'"):
        runtime_for("net.caffemodel")


def test_manifest_drives_feeding(onnx_artifact):
    runner = load_runner(str(onnx_artifact.path), LoadOptions(threads=2))
    assert runner.runtime == "onnxruntime"
    assert runner.io.preprocessing.mean == (0.5, 0.5, 0.5)
    assert runner.batch_size == 1


def test_model_without_manifest_needs_explicit_normalization(onnx_artifact, tmp_path):
    bare = tmp_path / "third_party.onnx"
    shutil.copy(onnx_artifact.path, bare)
    with pytest.raises(ConfigError, match="has no manifest .* pass --mean and --std"):
        load_runner(str(bare), LoadOptions())
    runner = load_runner(str(bare), LoadOptions(mean=(0.5,) * 3, std=(0.5,) * 3))
    assert runner.io.input.layout == "NCHW" and runner.io.preprocessing.crop == 224


def test_1001_way_classifier_drops_background(tmp_path, data_root):
    r = export(ExportRequest(target="onnx", weights="random", out_dir=tmp_path, parity_images=2, threads=1,
                             config=MobileNetV2Config(width=0.35, resolution=96, num_classes=1001)))
    r.manifest.unlink()  # behave like a third-party TF-slim model
    runner = load_runner(str(r.path), LoadOptions(mean=(0.5,) * 3, std=(0.5,) * 3))
    assert runner.io.output.background_class and runner.io.output.num_classes == 1000
    scores = runner.predict(np.zeros((2, 96, 96, 3), np.float32))
    raw = runner.infer(runner.io.input.feed(np.zeros((1, 96, 96, 3), np.float32)))[runner.io.output.name]
    assert scores.shape == (2, 1000)
    np.testing.assert_allclose(scores[0], raw[0, 1:])


def test_corrupt_and_missing_models(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(InputFileError, match="ONNX Runtime cannot load it"):
        load_runner(str(bad), LoadOptions())
    with pytest.raises(InputFileError, match="model file not found"):
        load_runner(str(tmp_path / "missing.onnx"), LoadOptions())


def test_corrupt_manifest_is_reported(onnx_artifact, tmp_path):
    copy = tmp_path / "m.onnx"
    shutil.copy(onnx_artifact.path, copy)
    (tmp_path / "m.onnx.manifest.json").write_text("{not json")
    with pytest.raises(InputFileError, match="corrupt manifest"):
        load_runner(str(copy), LoadOptions())


# One real model per runtime; a new runtime fails here until it gets an entry.
MODEL_FOR_RUNTIME = {"torch": None, "onnxruntime": "onnx_artifact", "litert": "tflite_fp32",
                     "openvino": "openvino_fp32", "executorch": "executorch_int8"}


@pytest.mark.parametrize("name", list(RUNTIMES))
def test_every_runtime_loads_a_model_and_reports_versions(name, request):
    fixture = MODEL_FOR_RUNTIME[name]
    model = str(request.getfixturevalue(fixture).path) if fixture else "random"
    runner = load_runner(model, LoadOptions(threads=1), runtime=name)
    assert runner.runtime == name and runner.versions()
    scores = runner.predict(np.zeros((1, *_hwc(runner)), np.float32))
    assert scores.shape == (1, 1000) and np.isfinite(scores).all()


def _hwc(runner):
    r = runner.io.preprocessing.crop
    return (r, r, 3)


def test_invalid_load_options():
    with pytest.raises(ConfigError, match="--threads must be between 1 and 256, got 0"):
        LoadOptions(threads=0)
    with pytest.raises(ConfigError, match="together"):
        LoadOptions(mean=(0.5,) * 3)
