"""Calibration sets for post-training quantization: real images, sampled and preprocessed once.

Sampling is seeded and class-stratified (round-robin over classes, so 200 images
from 185 classes cover every class before any class gets a second image). The
preprocessed tensor is cached by content (the selected files' bytes, the
preprocessing and the count), so a repeated export does not decode again. There is
no fallback to random data: missing, empty, too-small or unreadable sets are errors.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.core.artifacts import atomic_path, atomic_write_text
from edgedeploy.core.cache import cache_dir, content_key
from edgedeploy.core.errors import ConfigError, DataError
from edgedeploy.core.hashing import sha256_file, sha256_files
from edgedeploy.core.io_spec import Preprocessing
from edgedeploy.core.jsonfile import json_text, parse_json
from edgedeploy.core.paths import read_text
from edgedeploy.data.datasets import ImageFolder
from edgedeploy.data.preprocess import load_and_preprocess

__all__ = [
    "CalibrationSet",
    "load_calibration",
    "select_files",
    "open_calibration_source",
    "write_definition",
    "calibration_fingerprint",
    "DEFAULT_CALIB_SIZE",
    "DEFAULT_CALIB_SEED",
]

DEFAULT_CALIB_SIZE = 200
DEFAULT_CALIB_SEED = 0


@dataclass(frozen=True)
class CalibrationSet:
    """Preprocessed calibration images, NHWC float32, normalized like the model's input."""

    images: np.ndarray
    files: tuple[str, ...]
    root: Path
    seed: int
    classes: int
    key: str
    cached: bool

    def describe(self) -> dict[str, object]:
        return {"dir": str(self.root), "images": len(self.files), "classes": self.classes,
                "seed": self.seed, "sampling": "class-stratified", "key": self.key}


def select_files(dataset: ImageFolder, size: int, seed: int) -> list[Path]:
    """Seeded, class-stratified choice of ``size`` files (flat folders: a seeded sample)."""
    if size < 1:
        raise ConfigError(f"--calib-size must be at least 1, got {size}")
    if len(dataset) < size:
        raise DataError(
            f"{dataset.root}: only {len(dataset)} images for a calibration set of {size}; "
            f"add images or pass --calib-size {len(dataset)}"
        )
    rng = random.Random(seed)
    by_class: dict[int | None, list[Path]] = defaultdict(list)
    for path, label in dataset.files:
        by_class[label].append(path)
    pools = [rng.sample(paths, len(paths)) for _, paths in sorted(by_class.items(), key=lambda kv: str(kv[0]))]
    rng.shuffle(pools)
    chosen: list[Path] = []
    while len(chosen) < size:
        for pool in pools:
            if pool and len(chosen) < size:
                chosen.append(pool.pop())
    return sorted(chosen)


# A definition's root may start with this prefix: resolved against the sample data folder
# ($EDGEDEPLOY_DATA, ./data, ../shared/data), so one file works on every checkout.
DATA_PREFIX = "data:"
DEFINITION_SCHEMA = 1


def _resolve_root(root: str, definition: Path) -> Path:
    if root.startswith(DATA_PREFIX):
        from edgedeploy.core.sample_data import data_root

        return data_root() / root[len(DATA_PREFIX):]
    return (definition.parent / root).resolve()


def _read_definition(path: Path) -> ImageFolder:
    """A calibration-set definition (JSON: root + file list with sha256) -> the pinned images."""
    text = read_text(path, "calibration-set definition")
    try:
        data = parse_json(text)
        root = _resolve_root(str(data["root"]), path)
        entries = [(str(e["path"]), str(e["sha256"])) for e in data["files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a calibration-set definition ({exc.__class__.__name__}: {str(exc)[:80]})") from exc
    if not entries:
        raise DataError(f"{path}: the definition lists no images")
    folders = sorted({Path(p).parent.as_posix() for p, _ in entries})
    files: list[tuple[Path, int | None]] = []
    for rel, digest in entries:
        file = root / rel
        if not file.is_file():
            raise DataError(f"{path}: listed image {file} is missing")
        if sha256_file(file) != digest:
            raise DataError(f"{path}: listed image {file} has changed (sha256 differs): the set is no longer the same")
        # Folder names stand in for classes: they only steer stratified sampling.
        files.append((file, folders.index(Path(rel).parent.as_posix())))
    return ImageFolder(root, files, f"definition {path.name}")


def open_calibration_source(source: str | Path) -> ImageFolder:
    """An image folder (ImageFolder layout or flat), or a ``.json`` calibration-set definition."""
    source = Path(source)
    if source.suffix == ".json" and source.is_file():
        return _read_definition(source)
    return ImageFolder.open(source)


def write_definition(source: str | Path, out: str | Path, size: int, seed: int, name: str | None = None) -> dict[str, object]:
    """Pin a seeded, stratified selection of ``size`` images from ``source`` into a definition file."""
    from edgedeploy.core.sample_data import find_data_root

    dataset = open_calibration_source(source)
    files = select_files(dataset, size, seed)
    root = dataset.root.resolve()
    data = find_data_root()
    if data is not None and root.is_relative_to(data):
        root_text = DATA_PREFIX + root.relative_to(data).as_posix()
    else:
        root_text = os.path.relpath(root, Path(out).resolve().parent)
    definition = {
        "schema_version": DEFINITION_SCHEMA,
        "name": name or Path(out).stem,
        "root": root_text,
        "selection": {"size": size, "seed": seed, "sampling": "class-stratified",
                      "classes": len({label for p, label in dataset.files if p in set(files)})},
        "files": [{"path": f.resolve().relative_to(root).as_posix(), "sha256": sha256_file(f)} for f in files],
    }
    atomic_write_text(out, json_text(definition, indent=1) + "\n")
    return {"path": str(out), "name": definition["name"], "root": root_text, "images": len(files),
            "classes": definition["selection"]["classes"]}  # type: ignore[index]


def calibration_fingerprint(root: str | Path, size: int = DEFAULT_CALIB_SIZE, seed: int = DEFAULT_CALIB_SEED) -> str:
    """A digest of exactly the images a calibration with these settings would use."""
    dataset = open_calibration_source(root)
    return sha256_files([(f.name, f) for f in select_files(dataset, size, seed)])


def load_calibration(
    root: str | Path, preprocessing: Preprocessing, size: int = DEFAULT_CALIB_SIZE, seed: int = DEFAULT_CALIB_SEED
) -> CalibrationSet:
    """The calibration tensor for ``root`` (a folder or a definition file), from cache when possible."""
    dataset = open_calibration_source(root)
    root = dataset.root
    files = select_files(dataset, size, seed)
    key = content_key(sha256_files([(f.name, f) for f in files]), preprocessing.to_dict(), size, seed)
    cached_file = cache_dir("calibration") / f"{key}.npy"
    chosen = set(files)
    classes = len({label for path, label in dataset.files if path in chosen})
    names = tuple(str(f.relative_to(root)) for f in files)
    if cached_file.is_file():
        try:
            images = np.load(cached_file)
            if images.shape[0] == size:
                return CalibrationSet(images, names, root, seed, classes, key, cached=True)
        except (OSError, ValueError):
            pass  # a damaged cache entry is rebuilt below
    # Unreadable images are errors here, not skips: a silently smaller set is a different calibration.
    images = np.stack([load_and_preprocess(f, preprocessing) for f in files]).astype(np.float32)
    with atomic_path(cached_file) as tmp:
        with tmp.open("wb") as f:
            np.save(f, images)
    return CalibrationSet(images, names, root, seed, classes, key, cached=False)
