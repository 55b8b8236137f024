"""Calibration sets for post-training quantization: real images, sampled and preprocessed once.

Sampling is seeded and class-stratified (round-robin over classes, so 200 images
from 185 classes cover every class before any class gets a second image). The
preprocessed tensor is cached by content (the selected files' bytes, the
preprocessing and the count), so a repeated export does not decode again. There is
no fallback to random data: missing, empty, too-small or unreadable sets are errors.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.artifacts import atomic_path
from edgedeploy.cache import cache_dir, content_key
from edgedeploy.datasets import ImageFolder
from edgedeploy.errors import ConfigError, DataError
from edgedeploy.preprocess import load_and_preprocess
from edgedeploy.spec import Preprocessing

__all__ = ["CalibrationSet", "load_calibration", "select_files", "DEFAULT_CALIB_SIZE", "DEFAULT_CALIB_SEED"]

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


def _files_digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def load_calibration(
    root: str | Path, preprocessing: Preprocessing, size: int = DEFAULT_CALIB_SIZE, seed: int = DEFAULT_CALIB_SEED
) -> CalibrationSet:
    """The calibration tensor for ``root`` (ImageFolder or flat folder), from cache when possible."""
    root = Path(root)
    dataset = ImageFolder.open(root)
    files = select_files(dataset, size, seed)
    key = content_key(_files_digest(files), preprocessing.to_dict(), size, seed)
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
