import json
import shutil

import numpy as np
import pytest

from edgedeploy.core.errors import ConfigError, DataError
from edgedeploy.core.io_spec import Preprocessing
from edgedeploy.data.calibration import load_calibration, select_files
from edgedeploy.data.datasets import ImageFolder

SPEC = Preprocessing.for_resolution(96, mean=(0.5,) * 3, std=(0.5,) * 3)


def test_stratified_sampling_covers_every_class_first(calib_dir):
    ds = ImageFolder.open(calib_dir)
    classes = {label for _, label in ds.files}
    chosen = select_files(ds, len(classes), seed=0)
    labels = {label for path, label in ds.files if path in set(chosen)}
    assert labels == classes  # 185 images from 185 classes: one per class
    assert select_files(ds, 50, seed=1) == select_files(ds, 50, seed=1)
    assert select_files(ds, 50, seed=1) != select_files(ds, 50, seed=2)


def test_calibration_tensor_is_real_preprocessed_images_and_cached(calib_dir):
    first = load_calibration(calib_dir, SPEC, size=20, seed=0)
    assert first.images.shape == (20, 96, 96, 3) and first.images.dtype == np.float32
    assert -1.0 <= first.images.min() < -0.5 and 0.5 < first.images.max() <= 1.0
    assert not first.cached
    second = load_calibration(calib_dir, SPEC, size=20, seed=0)
    assert second.cached and second.key == first.key
    np.testing.assert_array_equal(first.images, second.images)
    other = load_calibration(calib_dir, Preprocessing.for_resolution(96), size=20, seed=0)
    assert other.key != first.key  # other preprocessing, other entry


def test_changed_image_content_invalidates_the_cache(tmp_path, data_root):
    for name in ("cat.bmp", "grace_hopper.bmp", "parrot.jpg"):
        shutil.copy(data_root / "images" / name, tmp_path / name)
    a = load_calibration(tmp_path, SPEC, size=3)
    shutil.copy(data_root / "images" / "cat.bmp", tmp_path / "parrot.jpg")  # same name, new bytes
    b = load_calibration(tmp_path, SPEC, size=3)
    assert a.key != b.key and not b.cached


def test_bad_calibration_sets(tmp_path, data_root):
    with pytest.raises(DataError, match="image folder not found"):
        load_calibration(tmp_path / "missing", SPEC)
    with pytest.raises(DataError, match="no image files found"):
        load_calibration(tmp_path, SPEC)
    shutil.copy(data_root / "images" / "cat.bmp", tmp_path / "cat.bmp")
    with pytest.raises(DataError, match="only 1 images for a calibration set of 200; add images or pass --calib-size 1"):
        load_calibration(tmp_path, SPEC)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DataError, match="broken.jpg: not a readable image"):
        load_calibration(tmp_path, SPEC, size=2)
    with pytest.raises(ConfigError, match="--calib-size must be at least 1"):
        load_calibration(tmp_path, SPEC, size=0)


def test_shipped_definition_pins_the_sample_calib_split(data_root):
    from pathlib import Path

    from edgedeploy.data.calibration import open_calibration_source

    definition = Path(__file__).resolve().parents[2] / "calibration" / "imagenet-subset-calib-200.json"
    ds = open_calibration_source(definition)
    assert len(ds) == 200 and ds.root == (data_root / "imagenet-subset" / "calib").resolve()
    calib = load_calibration(definition, SPEC, size=200)
    assert calib.images.shape == (200, 96, 96, 3) and calib.classes == 185


def test_definition_round_trip_and_tamper_detection(tmp_path, data_root):
    from edgedeploy.data.calibration import open_calibration_source, write_definition

    images = tmp_path / "imgs"
    for wnid, name in (("a", "cat.bmp"), ("a", "parrot.jpg"), ("b", "grace_hopper.bmp")):
        (images / wnid).mkdir(parents=True, exist_ok=True)
        shutil.copy(data_root / "images" / name, images / wnid / name)
    out = tmp_path / "defs" / "mine.json"
    info = write_definition(images, out, size=2, seed=0)
    assert info["images"] == 2 and info["classes"] == 2 and info["root"] == "../imgs"
    assert len(open_calibration_source(out)) == 2
    listed = json.loads(out.read_text())["files"][0]["path"]
    (images / listed).write_bytes((images / listed).read_bytes() + b"\0")
    with pytest.raises(DataError, match="has changed \\(sha256 differs\\)"):
        open_calibration_source(out)
    (images / listed).unlink()
    with pytest.raises(DataError, match="is missing"):
        open_calibration_source(out)
    (tmp_path / "bad.json").write_text('{"root": "x"}')
    with pytest.raises(DataError, match="not a calibration-set definition"):
        open_calibration_source(tmp_path / "bad.json")
