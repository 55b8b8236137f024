"""The float reference's outputs, cached per (model, preprocessing, image): an evaluation or export that
compares with the same PyTorch model on the same images reads them back instead of running the model again.

A runner offers caching through ``Runner.output_key()`` (the PyTorch runner: its weights' digest, its
architecture, its preprocessing, edgedeploy's code and torch's version); each image is keyed by its file's
content, so a renamed copy hits and an edited file misses. Entries live under the edgedeploy cache
(``$EDGEDEPLOY_CACHE/reference-outputs``), are written atomically, and may be deleted at any time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgedeploy.core.cache import cache_dir, content_key
from edgedeploy.core.io_spec import Outputs, Preprocessing
from edgedeploy.data.datasets import LabeledImage
from edgedeploy.runtimes.base import Runner

__all__ = ["reference_outputs", "MAX_CACHED_BYTES"]

# Outputs larger than this per image are recomputed, not stored (a 513 px 21-class score map is 22 MB).
MAX_CACHED_BYTES = 32 * 2**20


def _image_key(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    except OSError:
        return None


def _entry(model_key: str, image_key: str) -> Path | None:
    key = content_key(model_key, image_key)
    try:
        return cache_dir("reference-outputs") / key[:2] / f"{key}.npy"
    except OSError:
        return None  # no usable cache folder: the cache is an optimisation, never a requirement


def _load(path: Path) -> np.ndarray | None:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None  # missing or half-written by a killed process: recompute


def _store(path: Path, values: np.ndarray) -> None:
    if values.nbytes > MAX_CACHED_BYTES:
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            np.save(f, values, allow_pickle=False)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full or read-only disk: the outputs are simply not kept


def reference_outputs(reference: Runner, batch: list[LabeledImage],
                      inputs: Callable[[Preprocessing], np.ndarray], cached: bool = True) -> Outputs:
    """``reference``'s outputs on ``batch`` (``inputs(spec)`` gives the batch preprocessed), from the cache
    where present; the images it misses are run in one call and stored. ``cached=False``: images that are not
    their files' content (made-up pixels)."""
    # A model with several outputs (a detector's heads) is not cached: its outputs are not one array per image.
    model_key = reference.output_key() if cached and not reference.io.more_outputs else None
    if model_key is None:
        return reference.predict(inputs(reference.io.preprocessing))
    entries = [None if (k := _image_key(item.path)) is None else _entry(model_key, k) for item in batch]
    cached = [None if e is None else _load(e) for e in entries]
    missing = [i for i, values in enumerate(cached) if values is None]
    if missing:
        computed = reference.predict(inputs(reference.io.preprocessing)[missing])
        for i, values in zip(missing, computed):
            cached[i] = values
            if entries[i] is not None:
                _store(entries[i], values)
    return np.stack(cached)
