"""The PyTorch model the quantization methods work on: batch norm folded into the convolutions (the weights a
converter quantizes are the folded ones), and the chains of convolutions cross-layer equalization scales.

A chain link is conv -> activation -> conv where the activation is ReLU, ReLU6 or none and the first output has
no other reader (a residual add or a concatenation would see the rescaled channels). Found by tracing the
model with torch.fx, so any family whose forward traces (MobileNetV2, Mobile DeepLabv3) is covered.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import fx, nn

__all__ = ["fold_batch_norms", "ConvPair", "conv_pairs", "weighted_layers", "run_to", "batches", "BATCH"]

# Images per forward pass of the calibration set.
BATCH = 16

_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Identity)


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """A copy of ``model`` (eval mode) with every Conv2d -> BatchNorm2d pair of a Sequential fused into one
    Conv2d with a bias, the BatchNorm replaced by Identity (state_dict keys change; the function does not)."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (name, conv), (norm_name, norm) in zip(children, children[1:]):
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                setattr(module, name, torch.nn.utils.fusion.fuse_conv_bn_eval(conv, norm))
                setattr(module, norm_name, nn.Identity())
    return model


def weighted_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every Conv2d and Linear in forward (registration) order: what a converter quantizes."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@dataclass(frozen=True)
class ConvPair:
    first: str
    second: str
    # The activation between them (a module name), or None.
    activation: str | None


def conv_pairs(model: nn.Module) -> list[ConvPair]:
    """conv -> [ReLU|ReLU6] -> conv links of a BN-folded model whose first output has a single reader."""
    graph = fx.symbolic_trace(model).graph
    modules = dict(model.named_modules())

    def module_of(node: fx.Node) -> nn.Module | None:
        return modules.get(str(node.target)) if node.op == "call_module" else None

    pairs = []
    for node in graph.nodes:
        if not isinstance(module_of(node), nn.Conv2d):
            continue
        activations: list[str] = []
        current = node
        # Through single-reader Identity (folded BatchNorm) and activation modules to the next layer.
        while len(current.users) == 1:
            (current,) = current.users
            following = module_of(current)
            if isinstance(following, nn.Conv2d):
                if len(activations) <= 1:
                    pairs.append(ConvPair(str(node.target), str(current.target), activations[0] if activations else None))
                break
            if not isinstance(following, _ACTIVATIONS):
                break
            if not isinstance(following, nn.Identity):
                activations.append(str(current.target))
    return pairs


class _Stop(Exception):
    """Raised from a hook: the layer of interest has run, the rest of the forward pass is not needed."""


def run_to(model: nn.Module, name: str, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer ``name``'s input and output on ``batch``; the forward pass stops right after that layer."""
    seen: list[torch.Tensor] = []

    def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        seen[:] = [inputs[0], output]
        raise _Stop

    handle = model.get_submodule(name).register_forward_hook(hook)
    try:
        with torch.inference_mode():
            model(batch)
    except _Stop:
        pass
    finally:
        handle.remove()
    return seen[0], seen[1]


def batches(images: np.ndarray) -> list[torch.Tensor]:
    """Preprocessed NHWC images as NCHW tensors, BATCH at a time."""
    return list(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).split(BATCH))
