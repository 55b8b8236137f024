"""A float network filled from a .tflite's convolutions (Google's DeepLab and SSD files): what the families'
readers share. The file's weighted ops, in graph order, are the network's convolutions in forward order; each is
checked against the tensor name Google's graph gives that layer before anything is copied. TFLite keeps CONV_2D
filters as OHWI and DEPTHWISE_CONV_2D filters as 1HWC, with batch norm folded into a bias: the bias goes into the
BatchNorm after the convolution, whose statistics are set to the identity (weight 1, mean 0, variance 1 - eps)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedeploy.core.errors import WeightsError

__all__ = ["TfliteConv", "fill_from_tflite"]

# (op name, filter tensor name, filter, bias) of one weighted op, as each family's reader lists them.
TfliteConv = tuple[str, str, np.ndarray, np.ndarray]


def fill_from_tflite(path: Path, model: nn.Module, ops: list[TfliteConv], expected: dict[str, str], name: str,
                     norm_of: Callable[[str], str | None]) -> dict[str, torch.Tensor]:
    """``model``'s state_dict holding ``ops``' filters and biases; ``expected``: each conv's tensor-name prefix in
    Google's graph; ``norm_of(conv name)``: the BatchNorm after it, or None (the bias is the conv's own)."""
    modules = dict(model.named_modules())
    convs = [(n, m) for n, m in modules.items() if isinstance(m, nn.Conv2d)]
    if len(ops) != len(convs):
        raise WeightsError(f"{path}: {len(ops)} convolutions, {name} has {len(convs)}: not this architecture")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for (conv_name, conv), (op, tensor_name, filt, bias) in zip(convs, ops):
        if not tensor_name.startswith(expected[conv_name]):
            raise WeightsError(f"{path}: layer {conv_name} should read {expected[conv_name]}*, the graph has "
                               f"{tensor_name}")
        weight = filt.transpose(3, 0, 1, 2) if op == "DEPTHWISE_CONV_2D" else filt.transpose(0, 3, 1, 2)
        if tuple(weight.shape) != tuple(conv.weight.shape) or bias.shape != (conv.out_channels,):
            raise WeightsError(f"{path}: {tensor_name} has shape {list(weight.shape)}, {conv_name} needs "
                               f"{list(conv.weight.shape)}: not {name}")
        state[f"{conv_name}.weight"] = torch.from_numpy(np.ascontiguousarray(weight))
        norm_name = norm_of(conv_name)
        norm = modules.get(norm_name) if norm_name else None
        if isinstance(norm, nn.BatchNorm2d):
            state[f"{norm_name}.weight"] = torch.ones_like(norm.weight)
            state[f"{norm_name}.bias"] = torch.from_numpy(bias)
            state[f"{norm_name}.running_mean"] = torch.zeros_like(norm.running_mean)
            state[f"{norm_name}.running_var"] = torch.full_like(norm.running_var, 1.0 - norm.eps)
        else:
            state[f"{conv_name}.bias"] = torch.from_numpy(bias)
    return state
