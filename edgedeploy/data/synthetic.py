"""Seeded random-pixel images: latency inputs (latency does not depend on the pixels) and the
parity fallback when no real images are found (recorded as such)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from edgedeploy.core.io_spec import Preprocessing
from edgedeploy.data.preprocess import preprocess

__all__ = ["synthetic_pil_images", "synthetic_images"]


def synthetic_pil_images(count: int, size: int, seed: int = 0) -> list[Image.Image]:
    """``count`` seeded random-pixel RGB images of ``size`` x ``size``."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)]


def synthetic_images(spec: Preprocessing, batch: int = 1, seed: int = 0) -> np.ndarray:
    """Seeded random pixels through a model's own preprocessing ``spec``."""
    return np.stack([preprocess(image, spec) for image in synthetic_pil_images(batch, spec.resize, seed)])
