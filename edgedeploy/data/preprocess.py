"""Decode and preprocess images exactly like torchvision's Resize + CenterCrop + Normalize.

PIL + NumPy only, so evaluation needs no torchvision. The arithmetic follows
torchvision: shorter side resized to ``resize`` (longer side truncated), crop
offsets rounded, then (p / 255 - mean) / std. Dense-prediction models (``resize_mode``
stretch) take the whole image resized to their input instead, with the same PIL filter.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgedeploy.core.errors import DataError
from edgedeploy.core.io_spec import Preprocessing

__all__ = ["IMAGE_DECODE_ERRORS", "load_image", "preprocess", "load_and_preprocess"]

# What Pillow raises on a damaged or crafted file, beyond "not an image": a broken PNG chunk is a SyntaxError, a
# short read an EOFError or struct.error, a bad header arithmetic an IndexError or ZeroDivisionError (fuzzed).
IMAGE_DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError,
                       ZeroDivisionError, Image.DecompressionBombError)

_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}


def load_image(path: str | Path) -> Image.Image:
    """Decode an image file as RGB; raise DataError (one line) if it is not an image."""
    try:
        with Image.open(path) as img:
            return img.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"{path}: no such image file") from None
    except IMAGE_DECODE_ERRORS as exc:
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__})") from exc


def preprocess(image: Image.Image, spec: Preprocessing) -> np.ndarray:
    """RGB PIL image -> float32 HWC array, normalized as ``spec`` says."""
    if spec.resize_mode == "stretch":
        return _normalized(image.resize((spec.crop, spec.crop), _RESAMPLE[spec.interpolation]), spec)
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = spec.resize, int(spec.resize * long / short)
    size = (new_short, new_long) if w <= h else (new_long, new_short)
    image = image.resize(size, _RESAMPLE[spec.interpolation])
    w, h = image.size
    top = int(round((h - spec.crop) / 2.0))
    left = int(round((w - spec.crop) / 2.0))
    return _normalized(image.crop((left, top, left + spec.crop, top + spec.crop)), spec)


def _normalized(image: Image.Image, spec: Preprocessing) -> np.ndarray:
    pixels = np.asarray(image, dtype=np.float32)
    if spec.channel_order == "BGR":
        pixels = pixels[..., ::-1]
    if spec.raw_pixels:
        return pixels
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    return (pixels / 255.0 - mean) / std


def load_and_preprocess(path: str | Path, spec: Preprocessing) -> np.ndarray:
    return preprocess(load_image(path), spec)
