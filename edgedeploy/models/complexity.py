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
    # Batch norms' running means and variances (buffers, not parameters): Paddle's parameter counts include them.
    statistics: int = 0
    # Elements batch norms output: Paddle's FLOP counter (paddle.flops) charges 2 per element.
    norm_outputs: int = 0

    @property
    def paddle_params(self) -> int:
        """Parameters as PaddleClas' tables count them (batch norm statistics included)."""
        return self.params + self.statistics

    @property
    def paddle_flops(self) -> int:
        """FLOPs as PaddleClas' tables count them (``paddle.flops``): multiply-adds of convolutions and the
        classifier, plus 2 per batch-norm output; activations and residual adds are free. Its global pooling
        (``kernel + 1`` per output, 0.02% of MobileNetV2's count) is left out: the network pools with a mean."""
        return self.macs + 2 * self.norm_outputs


def measure_complexity(model: nn.Module, resolution: int) -> Complexity:
    """Count parameters and the MACs of convolutions and linear layers (the paper's convention).

    Batch norm, activations, residual adds and pooling are not counted in ``macs``, as in Table 3 of the
    MobileNetV2 paper (which reports 300M MACs / 3.4M params for 1.0/224); the classifier is.
    """
    macs = norm_outputs = 0

    def conv_hook(module: nn.Conv2d, _inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal macs
        kh, kw = module.kernel_size
        macs += out.numel() * (module.in_channels // module.groups) * kh * kw

    def linear_hook(module: nn.Linear, _inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal macs
        macs += out.numel() * module.in_features

    def norm_hook(_module: nn.Module, _inp: tuple[torch.Tensor], out: torch.Tensor) -> None:
        nonlocal norm_outputs
        norm_outputs += out.numel()

    hooks = {nn.Conv2d: conv_hook, nn.Linear: linear_hook, nn.BatchNorm2d: norm_hook}
    handles = [m.register_forward_hook(hook) for m in model.modules() for kind, hook in hooks.items()
               if isinstance(m, kind)]
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, 3, resolution, resolution))
    finally:
        for h in handles:
            h.remove()
    params = sum(p.numel() for p in model.parameters())
    statistics = sum(m.running_mean.numel() + m.running_var.numel() for m in model.modules()
                     if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None)
    return Complexity(params=params, macs=macs, statistics=statistics, norm_outputs=norm_outputs)
