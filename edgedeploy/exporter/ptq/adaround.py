"""Learned rounding of the weights (AdaRound: Nagel et al., "Up or Down? Adaptive Rounding for Post-Training
Quantization", ICML 2020), at the grid every converter derives (``grid.py``), baked into the float weights.

Layer by layer in forward order, each weight chooses between rounding down and up (a soft choice h in [0, 1]
per weight, pushed to 0 or 1 by an annealed regularizer) so that the layer's output on calibration data stays
closest to the float model's. The input comes from the model whose earlier layers are already rounded, the
target from the float model (the paper's asymmetric reconstruction), so each layer also absorbs the rounding
error it receives (activations stay float, as in bias correction: see there why). Outputs are compared
at sampled positions (unfolded patches), which makes a 1x1 or depthwise layer a small matrix problem. The
chosen integers times the scale become the layer's float weights: they lie on the grid, each channel's largest
weight stays at +-127 steps (those weights are not re-rounded), so every route's converter recomputes the same
scale and stores exactly these integers (tested per route).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgedeploy.exporter.ptq.graph import batches, run_to, weighted_layers
from edgedeploy.exporter.ptq.grid import QMAX, scales

__all__ = ["adaround", "ITERATIONS", "MAX_IMAGES", "POSITIONS"]

# Calibration images the layer inputs are drawn from, output positions sampled per layer, optimizer steps.
MAX_IMAGES = 32
POSITIONS = 1024
ITERATIONS = 200
LEARNING_RATE = 1e-2
# The paper's rectified sigmoid stretch, regularizer weight and annealing of its exponent (20 -> 2).
_ZETA, _GAMMA = 1.1, -0.1
_REG_WEIGHT = 0.01
_BETA = (20.0, 2.0)
_WARMUP = 0.2
SEED = 0


def _patches(layer: nn.Module, x: torch.Tensor, rows: list[torch.Tensor]) -> torch.Tensor:
    """(positions, groups, inputs per output) of ``x`` at the sampled output positions ``rows`` (one index
    tensor per image)."""
    if isinstance(layer, nn.Linear):
        return x.reshape(x.shape[0], 1, -1)
    cols = [F.unfold(image[None], layer.kernel_size, layer.dilation, layer.padding, layer.stride)[0][:, r].T
            for image, r in zip(x, rows)]
    patches = torch.cat(cols)
    return patches.reshape(patches.shape[0], layer.groups, -1)


def _weights(layer: nn.Module, weight: torch.Tensor) -> torch.Tensor:
    """(groups, outputs per group, inputs per output): the layer as one batched matrix product."""
    groups = getattr(layer, "groups", 1)
    return weight.reshape(groups, weight.shape[0] // groups, -1)


def _apply(layer: nn.Module, weight: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    out = torch.einsum("god,pgd->pgo", _weights(layer, weight), patches).reshape(patches.shape[0], -1)
    return out if layer.bias is None else out + layer.bias.detach()


def _sample_rows(layer: nn.Module, x: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
    if isinstance(layer, nn.Linear):
        return []
    positions = F.unfold(x[:1], layer.kernel_size, layer.dilation, layer.padding, layer.stride).shape[-1]
    per_image = max(1, POSITIONS // len(x))
    return [torch.randperm(positions, generator=generator)[:per_image] for _ in range(len(x))]


def _round_layer(layer: nn.Module, x_quant: torch.Tensor, x_float: torch.Tensor, weight_float: torch.Tensor,
                 per_channel: bool, generator: torch.Generator) -> float:
    """Learn ``layer``'s rounding; bake it into ``layer.weight``; returns the final reconstruction error
    relative to the output's power."""
    rows = _sample_rows(layer, x_float, generator)
    with torch.no_grad():
        target = _apply(layer, weight_float, _patches(layer, x_float, rows))
        inputs = _patches(layer, x_quant, rows)
    scale = scales(weight_float, per_channel)
    steps = weight_float / scale
    floor = torch.floor(steps)
    # Weights at the grid's ends keep their nearest rounding: the channel's largest weight stays at +-127 steps.
    frozen = steps.abs() >= QMAX - 0.5
    rest = (steps - floor).clamp(1e-4, 1 - 1e-4)
    v = torch.log((rest - _GAMMA) / (_ZETA - rest)).requires_grad_(True)  # h(v) = rest at the start
    optimizer = torch.optim.Adam([v], lr=LEARNING_RATE)
    power = float(target.pow(2).mean()) or 1.0

    def soft(v: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.sigmoid(v) * (_ZETA - _GAMMA) + _GAMMA, 0, 1)

    for step in range(ITERATIONS):
        h = soft(v)
        weight = torch.where(frozen, torch.round(steps), floor + h).clamp(-QMAX, QMAX) * scale
        reconstruction = (_apply(layer, weight, inputs) - target).pow(2).mean() / power
        progress = (step - _WARMUP * ITERATIONS) / ((1 - _WARMUP) * ITERATIONS)
        if progress < 0:
            loss = reconstruction
        else:
            beta = _BETA[1] + 0.5 * (_BETA[0] - _BETA[1]) * (1 + math.cos(math.pi * progress))
            loss = reconstruction + _REG_WEIGHT * (1 - (2 * h - 1).abs().pow(beta)).sum() / h.numel()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        chosen = torch.where(frozen, torch.round(steps), floor + (soft(v) >= 0.5).float()).clamp(-QMAX, QMAX)
        layer.weight.copy_(chosen * scale)
        return float((_apply(layer, layer.weight, inputs) - target).pow(2).mean()) / power


def adaround(model: nn.Module, images: np.ndarray, per_channel: bool) -> dict[str, Any]:
    """Round every weighted layer of ``model`` (BN-folded, eval) in place, on ``images`` (NHWC, preprocessed)."""
    reference = copy.deepcopy(model)
    parts = batches(images[:MAX_IMAGES])
    generator = torch.Generator().manual_seed(SEED)
    errors = {}
    for name, layer in weighted_layers(model):
        x_quant = torch.cat([run_to(model, name, b)[0] for b in parts]).clone()
        x_float = torch.cat([run_to(reference, name, b)[0] for b in parts]).clone()
        weight_float = reference.get_submodule(name).weight.detach().clone()
        errors[name] = _round_layer(layer, x_quant, x_float, weight_float, per_channel, generator)
    worst = max(errors, key=errors.get) if errors else None
    return {"layers": len(errors), "images": min(len(images), MAX_IMAGES), "iterations": ITERATIONS,
            "positions": POSITIONS, "mean_error": round(float(np.mean(list(errors.values()))), 6) if errors else 0,
            "worst_layer": worst, "worst_error": round(errors[worst], 6) if worst else 0}
