"""The int8 weight grid every route's converter derives: symmetric, zero point 0, scale = max |w| / 127 per
output channel (or per tensor), values rounded to the nearest integer in [-127, 127].

TFLite's converter, NNCF, ONNX Runtime (symmetric int8 weights), AI Edge Quantizer and the XNNPACK quantizer
all compute the scale this way from the weights they are given. So weights that already lie on this grid, with
each channel's largest value still at +-127 steps, come out of every converter as exactly the same integers:
methods that choose the rounding (AdaRound) bake their choice into the float weights and every route keeps it.
"""

from __future__ import annotations

import torch

__all__ = ["QMAX", "scales", "quantize", "fake_quantize", "channel_view"]

QMAX = 127


def channel_view(weight: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """The scale's shape broadcast over ``weight``: one per output channel (axis 0), or one for the tensor."""
    return weight.abs().amax(dim=tuple(range(1, weight.dim())), keepdim=True) if per_channel else weight.abs().amax()


def scales(weight: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """The converters' scale: max |w| / 127 (a channel of zeros gets scale 1: its weights stay 0)."""
    absmax = channel_view(weight, per_channel)
    return torch.where(absmax > 0, absmax / QMAX, torch.ones_like(absmax))


def quantize(weight: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Nearest-rounded integers on the grid (as float values), clamped to [-127, 127]."""
    return torch.clamp(torch.round(weight / scale), -QMAX, QMAX)


def fake_quantize(weight: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """``weight`` as a converter's int8 weights compute: rounded to its own grid, in float."""
    scale = scales(weight, per_channel)
    return quantize(weight, scale) * scale
