"""Google's float Mobile DeepLabv3 (.tflite) read into the family's state_dict: the ``sample`` weights.

The .tflite's weighted ops, in graph order, are the network's convolutions in forward order (stem,
then each block's expand / depthwise / project, then the head's image pooling, 1x1 branch,
projection and classifier); each is checked against the tensor name Google's graph gives that layer
before anything is copied. TFLite keeps CONV_2D filters as OHWI and DEPTHWISE_CONV_2D filters as
1HWC, with batch norm folded into a bias: the bias goes into the BatchNorm that follows the
convolution, whose statistics are set to the identity (weight 1, mean 0, variance 1 - eps), as in
the classification sample weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedeploy.core.errors import DependencyError, WeightsError
from edgedeploy.models.deeplabv3_mobilenet_v2.config import DeepLabV3MobileNetV2Config
from edgedeploy.models.deeplabv3_mobilenet_v2.network import DeepLabV3MobileNetV2
from edgedeploy.models.tflite_weights import fill_from_tflite

__all__ = ["read_tflite_state_dict", "tflite_layer_names"]

_WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D")
_HEAD = ("image_pooling", "aspp0", "concat_projection", "logits/semantic")


def tflite_layer_names(model: DeepLabV3MobileNetV2) -> dict[str, str]:
    """{PyTorch conv module name: the name prefix of its filter in Google's graph}."""
    names: dict[str, str] = {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.Conv2d):
            continue
        parts = name.split(".")
        if parts[0] == "backbone":
            block = int(parts[1])
            if block == 0:
                names[name] = "MobilenetV2/Conv/"
                continue
            scope = "expanded_conv" if block == 1 else f"expanded_conv_{block - 1}"
            kind = "depthwise" if module.groups > 1 else "project" if module.out_channels < module.in_channels or \
                (parts[3] != "0" and module.kernel_size == (1, 1)) else "expand"
            names[name] = f"MobilenetV2/{scope}/{kind}/"
        else:
            names[name] = dict(zip(("image_pooling", "aspp0", "concat_projection", "logits"), _HEAD))[parts[0]] + "/"
    return names


def _weighted_ops(path: Path) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(op, filter tensor name, filter, bias) of every convolution, in graph order."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        raise DependencyError("reading Google's .tflite needs ai-edge-litert: pip install 'edgedeploy[tflite]'") from None
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(path.read_bytes(), 0))
        graph = model.subgraphs[0]
    except Exception as exc:  # flatbuffers raises anything on a damaged file
        raise WeightsError(f"{path}: not a readable .tflite ({exc.__class__.__name__})") from exc
    codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    def array(index: int) -> np.ndarray:
        tensor = graph.tensors[index]
        if tensor.type != schema.TensorType.FLOAT32:
            raise WeightsError(f"{path}: tensor {tensor.name.decode()} is not float32: not Google's float model")
        data = model.buffers[tensor.buffer].data
        return np.frombuffer(bytes(data), dtype=np.float32).reshape(tensor.shape).copy()

    ops = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        name = codes[max(code.builtinCode, code.deprecatedBuiltinCode)]
        if name in _WEIGHTED:
            _, filt, bias = op.inputs
            ops.append((name, graph.tensors[filt].name.decode(), array(filt), array(bias)))
    return ops


def read_tflite_state_dict(path: Path, config: DeepLabV3MobileNetV2Config = DeepLabV3MobileNetV2Config()
                           ) -> dict[str, torch.Tensor]:
    """The state_dict of ``config``'s network holding the float weights of the .tflite at ``path``."""
    model = DeepLabV3MobileNetV2(config)

    def norm_of(conv: str) -> str | None:
        # The BatchNorm after a convolution is the next module of its Sequential.
        head, _, index = conv.rpartition(".")
        return f"{head}.{int(index) + 1}" if index.isdigit() else None

    return fill_from_tflite(path, model, _weighted_ops(path), tflite_layer_names(model), config.name, norm_of)
