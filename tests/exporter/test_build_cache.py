"""The build cache: what its key covers, and that only an intact entry is reused."""

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from edgedeploy.exporter.build_cache import build_key, cached_export, conversion_packages
from edgedeploy.exporter.pipeline import ExportRequest
from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config


@pytest.fixture()
def checkpoint(tmp_path) -> Path:
    from edgedeploy.models.weights import build_model

    path = tmp_path / "w.pth"
    model, _ = build_model(MobileNetV2Config(width=0.35, resolution=96, num_classes=10), "random")
    torch.save(model.state_dict(), path)
    return path


def images(folder: Path, count: int, shade: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (40, 40), (shade + 10 * i, 50, 90)).save(folder / f"{i}.png")
    return folder


def request(checkpoint: Path, tmp_path: Path, **kw) -> ExportRequest:
    return ExportRequest(target="onnx-int8", config=MobileNetV2Config(width=0.35, resolution=96, num_classes=10),
                         weights=str(checkpoint), out_dir=tmp_path / "out", threads=1,
                         calib_dir=images(tmp_path / "calib", 6), calib_size=4, parity_images=2,
                         parity_data=images(tmp_path / "parity", 2), parity_min_agreement=0.0, **kw)


def test_key_ignores_where_and_how_many_threads(checkpoint, tmp_path):
    base = request(checkpoint, tmp_path)
    assert build_key(base) == build_key(base.replace(out_dir=tmp_path / "elsewhere", threads=2))


def test_key_covers_options_weights_and_calibration_content(checkpoint, tmp_path):
    base = request(checkpoint, tmp_path)
    key = build_key(base)
    assert build_key(base.replace(calib_method="percentile")) != key
    assert build_key(base.replace(calib_size=5)) != key
    assert build_key(base.replace(calib_seed=1)) != key
    assert build_key(base.replace(parity_images=1)) != key
    # The same file names with other pixels: a different calibration, a different build.
    images(tmp_path / "calib", 6, shade=100)
    new_calibration = build_key(base)
    assert new_calibration != key
    # The same path with other weights.
    state = torch.load(checkpoint, weights_only=True)
    state["classifier.1.bias"] += 1
    torch.save(state, checkpoint)
    assert build_key(base) != new_calibration


def test_conversion_packages_follow_the_extras():
    assert {"torch", "onnx", "onnxruntime", "onnxsim"} <= set(conversion_packages(None))
    assert {"tensorflow", "onnx2tf", "ai-edge-litert"} <= set(conversion_packages("tflite"))
    assert {"openvino", "nncf"} <= set(conversion_packages("openvino"))
    assert "openvino" not in conversion_packages("tflite")


def test_an_unchanged_build_is_reused_and_a_tampered_one_rebuilt(checkpoint, tmp_path):
    first, cached = cached_export(request(checkpoint, tmp_path))
    assert not cached and Path(first["path"]).is_file() and Path(first["manifest"]).is_file()
    second, cached = cached_export(request(checkpoint, tmp_path))
    assert cached and second["sha256"] == first["sha256"] and second["build_key"] == first["build_key"]
    # The published copy is complete: artifact, manifest, both matching.
    manifest = json.loads(Path(second["manifest"]).read_text())
    assert manifest["sha256"] == first["sha256"]
    # A damaged cache entry is never published: it is rebuilt.
    from edgedeploy.core.cache import cache_dir

    entry = cache_dir("builds") / first["build_key"]
    artifact = entry / Path(first["path"]).name
    artifact.write_bytes(artifact.read_bytes()[:-10])
    third, cached = cached_export(request(checkpoint, tmp_path))
    assert not cached and third["sha256"] == first["sha256"]
    _, cached = cached_export(request(checkpoint, tmp_path), force=True)
    assert not cached
