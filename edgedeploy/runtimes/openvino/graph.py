"""What the OpenVINO runtime knows about an IR: weighted ops and how NNCF and fp16 compression
store weights (Constant -> Convert -> Subtract zero point -> Multiply scale), walked in one place."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["WEIGHTED_OPS", "ELEMENT_TYPES", "WEIGHT_CHAIN_OPS", "stored_dtype", "folded_weights", "feeds_from",
           "quantized_input", "quantized_convolutions"]

WEIGHTED_OPS = ("Convolution", "GroupConvolution", "MatMul")
# OpenVINO's element type names -> numpy's.
ELEMENT_TYPES = {"f32": "float32", "f16": "float16", "i8": "int8", "u8": "uint8"}
# Ops between a stored weight Constant and the layer that uses it.
WEIGHT_CHAIN_OPS = ("Convert", "Multiply", "Subtract", "Reshape", "Transpose")


def stored_dtype(node: Any, depth: int = 6) -> str:
    """The element type a weight is stored in: NNCF's int8 weights and fp16 compression sit
    behind Convert (and Subtract/Multiply for the scale); follow them to the Constant."""
    if node.get_type_name() == "Constant":
        return node.get_output_element_type(0).get_type_name()
    if depth == 0 or node.get_type_name() not in WEIGHT_CHAIN_OPS:
        return "computed"
    return stored_dtype(node.input_value(0).get_node(), depth - 1)


def folded_weights(node: Any) -> np.ndarray | None:
    """A weight's value as the model computes with it: NNCF stores int8 weights as
    Constant -> Convert -> (Subtract zero point) -> Multiply scale; fp16 as Constant -> Convert."""
    kind = node.get_type_name()
    if kind == "Constant":
        return node.get_data().astype(np.float32)
    if kind in ("Convert", "Reshape", "Transpose"):
        value = folded_weights(node.input_value(0).get_node())
        return None if value is None else value.reshape(tuple(node.get_output_shape(0)))
    if kind in ("Subtract", "Multiply"):
        a, b = (folded_weights(node.input_value(i).get_node()) for i in range(2))
        if a is None or b is None:
            return None
        return (a - b if kind == "Subtract" else a * b).astype(np.float32)
    return None


def feeds_from(node: Any, op_type: str, depth: int = 3) -> bool:
    """Whether ``node`` is, or is fed through a few Convert/Reshape steps by, an op of ``op_type``."""
    if node.get_type_name() == op_type:
        return True
    if depth == 0 or node.get_type_name() not in WEIGHT_CHAIN_OPS:
        return False
    return any(feeds_from(node.input_value(i).get_node(), op_type, depth - 1) for i in range(node.get_input_size()))


def quantized_input(node: Any) -> bool:
    """Whether ``node`` gives a layer an int8 input: a FakeQuantize (through a few Convert/Reshape steps), or
    a Concat of such inputs (NNCF quantizes a concatenation's inputs with one shared scale, so the joined
    tensor is int8: DeepLab's concat -> 1x1 projection), or a max pooling of one (the maximum of grid values is
    a grid value, so NNCF quantizes before the pool: a plain CNN's conv -> pool -> conv)."""
    if node.get_type_name() == "Concat":
        return all(quantized_input(node.input_value(i).get_node()) for i in range(node.get_input_size()))
    if node.get_type_name() == "MaxPool":
        return quantized_input(node.input_value(0).get_node())
    return feeds_from(node, "FakeQuantize")


def quantized_convolutions(model: Any) -> tuple[int, int]:
    """(convolutions fed by a FakeQuantize, all convolutions) in an OpenVINO model."""
    convs = [op for op in model.get_ordered_ops() if op.get_type_name() in ("Convolution", "GroupConvolution")]
    quantized = sum(
        1 for op in convs
        if any(quantized_input(op.input_value(i).get_node()) for i in range(op.get_input_size()))
    )
    return quantized, len(convs)
