"""Model wrappers used at export time."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["RawPixelInput"]


class RawPixelInput(nn.Module):
    """Folds (p / 255 - mean) / std into the graph, so the exported model takes raw 0-255 pixels.

    With a uint8 input this makes the input quantization (scale 1, zero point 0 for
    a calibration set spanning 0..255) exactly "raw pixels": the app feeds camera
    bytes with no float preprocessing on the device.
    """

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.model = model
        self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(std).view(1, 3, 1, 1)))
        self.register_buffer("offset", torch.tensor(mean).view(1, 3, 1, 1) / torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x * self.scale - self.offset)
