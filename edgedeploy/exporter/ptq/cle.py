"""Cross-layer equalization (Nagel et al., "Data-Free Quantization", ICCV 2019, section 4.1).

For a conv -> (ReLU) -> conv link, channel i of the first layer's output can be divided by s_i and the second
layer's input channel i multiplied by s_i without changing the float function, because ReLU(x / s) = ReLU(x) / s
for s > 0. Choosing s_i = sqrt(r1_i / r2_i) (r1: channel i's weight range in the first layer, r2: in the second)
gives both layers the same per-channel ranges, so one scale per tensor fits every channel: what per-tensor int8
(NPUs, the EdgeTPU) needs, and what MobileNetV2's depthwise layers (ranges differing by 100x per channel) lack.
Links are equalized in turn until the scales settle (a depthwise layer sits in two links).

ReLU6 is not scale-equivariant: min(x / s, 6) != min(x, 6) / s. DFQ and AIMET replace it with ReLU; on the
sample MobileNetV2 that alone costs 4 points of top-1 (82.0 -> 78.0 on 300 val images: 14% of its channels
clip at 6 on calibration images), more than per-tensor rounding after equalization does. So the clip is kept,
per channel: a ReLU6 between equalized layers becomes min(ReLU(x), 6 / s_i) (``ChannelClamp``), which is the
original function exactly (82.0 again). It converts on every route as a ReLU and a Minimum with a constant; the
cost is that extra elementwise op after each equalized layer (docs/int8.md measures it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgedeploy.exporter.ptq.graph import conv_pairs

__all__ = ["equalize", "ChannelClamp", "MAX_ROUNDS"]

MAX_ROUNDS = 50
# Scales within this factor of 1 in a round: converged.
_TOLERANCE = 1e-4
# A channel with no weights left keeps its scale (nothing to balance).
_EPS = 1e-12


def _output_range(conv: nn.Conv2d) -> torch.Tensor:
    return conv.weight.detach().abs().amax(dim=(1, 2, 3))


def _input_range(conv: nn.Conv2d) -> torch.Tensor:
    weight = conv.weight.detach().abs()
    if conv.groups == conv.in_channels and conv.groups > 1:  # depthwise: input channel i is output channel i
        return weight.amax(dim=(1, 2, 3))
    return weight.amax(dim=(0, 2, 3))


class ChannelClamp(nn.Module):
    """ReLU6 after its input channels were divided by s: min(ReLU(x), 6 / s) per channel."""

    def __init__(self, bound: torch.Tensor):
        super().__init__()
        self.register_buffer("bound", bound.reshape(1, -1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.minimum(torch.relu(x), self.bound)


def _equalize_pair(first: nn.Conv2d, second: nn.Conv2d) -> torch.Tensor:
    """Scale one link; returns the scales applied to the first layer's output channels (divided by)."""
    r1, r2 = _output_range(first), _input_range(second)
    valid = (r1 > _EPS) & (r2 > _EPS)
    s = torch.where(valid, torch.sqrt(r1 / torch.where(valid, r2, torch.ones_like(r2))), torch.ones_like(r1))
    with torch.no_grad():
        first.weight.div_(s.view(-1, 1, 1, 1))
        if first.bias is not None:
            first.bias.div_(s)
        if second.groups == second.in_channels and second.groups > 1:
            second.weight.mul_(s.view(-1, 1, 1, 1))
        else:
            second.weight.mul_(s.view(1, -1, 1, 1))
    return s


def equalize(model: nn.Module) -> dict[str, Any]:
    """Equalize every conv link of a BN-folded ``model`` in place; a ReLU6 between links becomes the per-channel
    clamp that keeps the function exact."""
    pairs = [p for p in conv_pairs(model) if _compatible(model, p.first, p.second)]
    modules = dict(model.named_modules())
    divided = {p.first: torch.ones(modules[p.first].out_channels) for p in pairs}
    rounds = 0
    for rounds in range(1, MAX_ROUNDS + 1):
        moved = 0.0
        for pair in pairs:
            s = _equalize_pair(modules[pair.first], modules[pair.second])
            divided[pair.first] *= s
            moved = max(moved, float(s.log().abs().max()))
        if moved < _TOLERANCE:
            break
    clamped = 0
    for pair in pairs:
        if pair.activation and isinstance(modules[pair.activation], nn.ReLU6):
            _replace(model, pair.activation, ChannelClamp(6.0 / divided[pair.first]))
            clamped += 1
    ranges = [_output_range(modules[p.first]) for p in pairs]
    spread = max((float(r.max() / r[r > _EPS].min()) for r in ranges if (r > _EPS).any()), default=1.0)
    return {"pairs": len(pairs), "relu6_clamped": clamped, "rounds": rounds, "max_channel_range_ratio": round(spread, 2)}


def _compatible(model: nn.Module, first: str, second: str) -> bool:
    """Plain (groups 1) or depthwise convolutions whose channels line up one to one."""
    modules = dict(model.named_modules())
    a, b = modules[first], modules[second]
    plain_or_depthwise = b.groups == 1 or b.groups == b.in_channels
    return a.out_channels == b.in_channels and (a.groups == 1 or a.groups == a.out_channels) and plain_or_depthwise


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)
