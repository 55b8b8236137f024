"""Shared fixtures. Tests that need the sample data skip with a clear reason when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgedeploy.sample_data import CALIB_DIR, SAMPLE_WEIGHTS, SYNSETS, VAL_DIR, find_data_root


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = find_data_root()
    if root is None:
        pytest.skip("shared sample data not found: set EDGEDEPLOY_DATA or provide ../shared/data")
    return root


@pytest.fixture(scope="session")
def sample_weights(data_root: Path) -> Path:
    return data_root / SAMPLE_WEIGHTS


@pytest.fixture(scope="session")
def val_dir(data_root: Path) -> Path:
    return data_root / VAL_DIR


@pytest.fixture(scope="session")
def calib_dir(data_root: Path) -> Path:
    return data_root / CALIB_DIR


@pytest.fixture(scope="session")
def synsets(data_root: Path) -> Path:
    return data_root / SYNSETS


@pytest.fixture(scope="session")
def onnx_artifact(tmp_path_factory: pytest.TempPathFactory, data_root: Path):
    """One real export of the sample weights, shared by every test that only reads it."""
    from edgedeploy.pipeline import ExportRequest, export

    out = tmp_path_factory.mktemp("onnx")
    return export(ExportRequest(target="onnx", weights="sample", out_dir=out, threads=2))


@pytest.fixture()
def image_folder(tmp_path: Path, data_root: Path) -> Path:
    """A tiny ImageFolder built from the real sample photos, plus one non-image file."""
    import shutil

    root = tmp_path / "images"
    # Class indices from synsets.txt: n01440764 is 0 (tench), n02123045 is 281 (tabby).
    for wnid, photo in (("n02123045", "cat.bmp"), ("n01440764", "parrot.jpg")):
        (root / wnid).mkdir(parents=True)
        shutil.copy(data_root / "images" / photo, root / wnid / photo)
    (root / "n02123045" / "notes.txt").write_text("not an image")
    return root
