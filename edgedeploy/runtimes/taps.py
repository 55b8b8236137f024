"""Every layer's output, in graph order, from a model file: what ``diagnose`` compares.

Each runtime that offers it has a ``taps.py`` (named by its registry row). A quantized
model's activations come back dequantized to float, so an int8 model and its float
reference can be compared tensor by tensor. ``Layer.name`` is what ``export --keep-float``
takes for that runtime's int8 target.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from edgedeploy.core.io_spec import ModelIO

__all__ = ["Layer", "LayerTaps", "Quantizer", "dequantize"]


@dataclass(frozen=True, eq=False)
class Quantizer:
    """An int8/uint8 activation quantizer: what the quantized model does to this layer's output.
    Scale and zero point are scalars, or arrays that broadcast over the activation (per channel)."""

    scale: float | np.ndarray
    zero_point: int | np.ndarray
    qmin: int
    qmax: int

    @property
    def bounds(self) -> tuple[float, float]:
        """The float range the quantizer represents; values outside it are clipped."""
        return (self.qmin - self.zero_point) * self.scale, (self.qmax - self.zero_point) * self.scale

    def fake_quantize(self, x: np.ndarray) -> np.ndarray:
        q = np.clip(np.round(x / self.scale) + self.zero_point, self.qmin, self.qmax)
        return ((q - self.zero_point) * self.scale).astype(np.float32)


@dataclass(frozen=True)
class Layer:
    # What --keep-float takes to keep this layer in float.
    name: str
    op: str
    # Matches this layer across a quantized model and its float reference.
    key: str
    # How the output is quantized (None: a float output, or not known at this point).
    quantizer: Quantizer | None
    # Keys of the tapped layers that feed this one (the error it received).
    inputs: tuple[str, ...] = ()
    # The weights as the model computes with them (dequantized); None for ops without weights.
    weights: np.ndarray | None = field(default=None, repr=False, compare=False)
    # The weights' output-channel axis.
    weights_axis: int = 0

    @property
    def step(self) -> float | None:
        return float(np.mean(self.quantizer.scale)) if self.quantizer else None


def dequantize(values: np.ndarray, scales: np.ndarray, zero_points: np.ndarray, axis: int) -> np.ndarray:
    """Per-tensor or per-channel (along ``axis``) dequantization of stored integer weights."""
    shape = [1] * values.ndim
    if np.size(scales) > 1:
        shape[axis] = -1
    scales, zero_points = np.reshape(scales, shape), np.reshape(zero_points, shape)
    return ((values.astype(np.float32) - zero_points) * scales).astype(np.float32)


class LayerTaps(ABC):
    """A model opened so that one image gives every layer's output."""

    layers: list[Layer]
    io: ModelIO

    @abstractmethod
    def run(self, image_hwc: np.ndarray) -> dict[str, np.ndarray]:
        """One preprocessed image (H, W, C) -> {layer key: float32 activations}."""
