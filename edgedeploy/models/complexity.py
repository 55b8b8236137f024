"""Parameter and multiply-accumulate counts, measured by tracing one forward pass."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Complexity", "measure_complexity"]


@dataclass(frozen=True)
class Complexity:
    params: int
    macs: int


def measure_complexity(model: nn.Module, resolution: int) -> Complexity:
    """Count parameters and the MACs of convolutions and linear layers (the paper's convention).

    Batch norm, activations, residual adds and pooling are not counted, as in
    Table 3 of the MobileNetV2 paper (which reports 300M MACs / 3.4M params for 1.0/224).
    """
    macs = 0

    def conv_hook(module: nn.Conv2d, _inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal macs
        kh, kw = module.kernel_size
        macs += out.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, _inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal macs
        macs += out.numel() * module.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, 3, resolution, resolution))
    finally:
        for h in handles:
            h.remove()
    params = sum(p.numel() for p in model.parameters())
    return Complexity(params=params, macs=macs)
