import json
import os

import pytest

from edgedeploy.core.artifacts import atomic_path, staging_dir
from edgedeploy.core.errors import InputFileError
from edgedeploy.core.manifest import manifest_path, read_manifest, write_manifest


def test_atomic_path_publishes_only_on_success(tmp_path):
    final = tmp_path / "model.onnx"
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("converter crashed")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(final) as tmp:
        tmp.write_bytes(b"whole")
    assert final.read_bytes() == b"whole" and list(tmp_path.iterdir()) == [final]
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "m.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(old)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_atomic_path_cleans_up_on_keyboard_interrupt(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "x.bin") as tmp:
            tmp.write_bytes(b"x")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_staging_dir_is_removed(tmp_path):
    with pytest.raises(ValueError):
        with staging_dir(tmp_path) as stage:
            (stage / "exported.onnx").write_bytes(b"x")
            raise ValueError
    assert list(tmp_path.iterdir()) == []


def test_manifest_round_trip_and_corruption(tmp_path, onnx_artifact):
    data = json.loads(onnx_artifact.manifest.read_text())
    artifact = tmp_path / "m.onnx"
    write_manifest(artifact, data)
    assert manifest_path(artifact).name == "m.onnx.manifest.json"
    assert read_manifest(artifact).io.preprocessing.resize == 256
    assert read_manifest(tmp_path / "other.onnx") is None
    broken = dict(data)
    del broken["input"]
    write_manifest(artifact, broken)
    with pytest.raises(InputFileError, match="corrupt manifest"):
        read_manifest(artifact)
