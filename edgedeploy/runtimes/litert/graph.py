"""What the LiteRT runtime knows about a .tflite graph: its ops, its layer names, its weighted ops."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.runtimes.litert.runner import open_interpreter

__all__ = ["WEIGHTED_OPS", "IO_OPS", "graph_ops", "layer_name", "graph_summary"]

# Ops that carry weights (checked by the precision proof, tapped with their weights by diagnose).
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# Boundary (de)quantization: not compute.
IO_OPS = ("QUANTIZE", "DEQUANTIZE")


def graph_ops(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The model's own ops and tensors, in graph order.

    Read from an interpreter without delegates: once XNNPACK is applied, the ops it
    took are listed as a single DELEGATE node.
    """
    interpreter = open_interpreter(path, xnnpack=False)
    return interpreter._get_ops_details(), interpreter.get_tensor_details()  # the only op listing LiteRT offers


_KERAS_PREFIX = re.compile(r"^model(_\d+)?/")
# litert-torch names a tensor by its module scope, one "<module.path.Class>_<attribute>" per level.
_TORCH_SCOPE = re.compile(r"^(?:\w+\.)*[A-Za-z]\w*?_(\w+)$")
# The wrapper litert-torch's to_channel_last_io puts around the model (its attribute "wrapped").
_CHANNEL_LAST_WRAPPER = "litert_torch._convert.to_channel_last_io.ChannelLastIOWrapper"


def layer_name(tensor_name: str) -> str:
    """A TFLite op's stable name: the first of its fused output names, without the Keras
    model prefix (``model_2/``), whose number depends on how many models a process built.
    litert-torch's module scopes become the PyTorch module's own name (``features.1.conv.0``)."""
    name = _KERAS_PREFIX.sub("", tensor_name.split(";")[0])
    root, *scope = name.split("/")
    attributes = [_TORCH_SCOPE.match(part) for part in scope]
    if "." not in root or not scope or not all(attributes):
        return name
    path = [m.group(1) for m in attributes if m]
    if root == _CHANNEL_LAST_WRAPPER:
        path = path[1:]
    # Ops of the model's own forward (the global pool's MEAN) sit at its top scope: its class name.
    return ".".join(path) or scope[-1].rsplit(".", 1)[-1].rsplit("_", 1)[0]


def graph_summary(path: str | Path) -> dict[str, Any]:
    """Op histogram, tensor dtypes and the ops that compute in float (a fully-integer model has none)."""
    ops, tensor_list = graph_ops(Path(path))
    tensors = {t["index"]: t for t in tensor_list}
    float_ops = []
    for op in ops:
        indices = [i for i in (*op["inputs"], *op["outputs"]) if i >= 0]
        if any(np.dtype(tensors[i]["dtype"]).kind == "f" for i in indices if i in tensors):
            float_ops.append(op["op_name"])
    dtypes = Counter(np.dtype(t["dtype"]).name for t in tensors.values())
    return {
        "ops": dict(Counter(op["op_name"] for op in ops).most_common()),
        "tensor_dtypes": dict(dtypes.most_common()),
        "float_ops": float_ops,
        "integer_only": not float_ops,
    }
