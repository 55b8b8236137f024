"""Proof that an artifact has the precision its target promises, read from the graph itself.

A converter can silently fall back (a float op left in an "int8" model, fp16 weights
that stayed fp32, a convolution NNCF skipped). After every export, each weighted layer
(convolution, depthwise convolution, fully-connected/MatMul) is checked:

- fp32: weights float32, no quantization ops.
- fp16: weights stored as float16 (dequantized to float32 at load).
- int8-weights: weights int8, activations float (TFLite dynamic range).
- int8: weights int8 and every compute op integer (TFLite); weights int8 and activations
  quantized (QuantizeLinear/DequantizeLinear in ONNX, FakeQuantize in OpenVINO).

Layers the user kept float (``--keep-float``) or that accuracy control put back are
allowed and listed. The verdict goes into the manifest; a target that produced the
wrong precision fails the export.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PrecisionVerdict", "verify_precision", "ANY_LAYER"]

# keep_float value meaning "any layer may be float" (OpenVINO accuracy control decides which).
ANY_LAYER = "*"


@dataclass
class PrecisionVerdict:
    requested: str
    # Weighted layers by the dtype their weights are stored in.
    weights: dict[str, int]
    # Weighted layers that compute in float although the target is integer.
    float_layers: list[str] = field(default_factory=list)
    # Other ops that compute in float in an integer model (beyond allowed layers and IO).
    float_ops: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"requested": self.requested, "verified": self.verified, "weights": self.weights,
                "float_layers": self.float_layers, "float_ops": self.float_ops, "problems": self.problems}


def _expect_weights(verdict: PrecisionVerdict, dtype: str, layers: dict[str, str], allowed: Callable[[str], bool]) -> None:
    wrong = [name for name, d in layers.items() if d != dtype and not allowed(name)]
    if wrong:
        found = ", ".join(f"{n} {c}" for n, c in Counter(layers[w] for w in wrong).items())
        verdict.problems.append(f"{len(wrong)} of {len(layers)} weighted layers are not {dtype} ({found}; "
                                f"first: {wrong[0]})")
    if not layers:
        verdict.problems.append("no weighted layer found")


def _allowed(keep_float: Collection[str]) -> Callable[[str], bool]:
    return (lambda _name: True) if ANY_LAYER in keep_float else (lambda name: name in keep_float)


# --- LiteRT ---------------------------------------------------------------------------------------

_TFLITE_WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
_TFLITE_IO_OPS = ("QUANTIZE", "DEQUANTIZE")
# TFLite's dynamic-range quantization leaves weights with fewer elements than this in float
# (documented converter behaviour: quantizing them saves nothing): allowed, and listed.
_TFLITE_DYNAMIC_MIN_ELEMENTS = 1024


def _verify_tflite(path: Path, requested: str, keep_float: Collection[str]) -> PrecisionVerdict:
    from edgedeploy.layers import tflite_layer_name
    from edgedeploy.runtimes.litert_runtime import graph_ops

    ops, tensor_list = graph_ops(path)
    tensors = {t["index"]: t for t in tensor_list}
    dtype = {i: np.dtype(t["dtype"]).name for i, t in tensors.items()}
    # fp16 weights are float16 constants behind a DEQUANTIZE: follow it to the stored dtype.
    dequantized_from = {op["outputs"][0]: op["inputs"][0] for op in ops if op["op_name"] == "DEQUANTIZE"}
    weights: dict[str, str] = {}
    small: set[str] = set()
    float_ops: list[str] = []
    float_layers: list[str] = []
    allowed = _allowed(keep_float)
    for op in ops:
        name = tflite_layer_name(tensors[op["outputs"][0]]["name"])
        if op["op_name"] in _TFLITE_WEIGHTED:
            w = dequantized_from.get(op["inputs"][1], op["inputs"][1])
            weights[name] = dtype[w]
            if int(np.prod(tensors[w]["shape"])) < _TFLITE_DYNAMIC_MIN_ELEMENTS:
                small.add(name)
        if op["op_name"] in _TFLITE_IO_OPS:
            continue
        computes_in_float = any(dtype[i] == "float32" for i in (op["inputs"][0], op["outputs"][0]))
        if computes_in_float:
            (float_layers if op["op_name"] in _TFLITE_WEIGHTED else float_ops).append(name)
    verdict = PrecisionVerdict(requested, dict(Counter(weights.values())))
    has_quantize_ops = any(op["op_name"] in _TFLITE_IO_OPS for op in ops)
    if requested == "fp32":
        _expect_weights(verdict, "float32", weights, lambda _n: False)
        if has_quantize_ops:
            verdict.problems.append("has QUANTIZE/DEQUANTIZE ops")
    elif requested == "fp16":
        _expect_weights(verdict, "float16", weights, lambda _n: False)
    elif requested == "int8-weights":
        _expect_weights(verdict, "int8", weights, small.__contains__)
        verdict.float_layers = sorted(n for n in small if weights[n] != "int8")
    else:
        _expect_weights(verdict, "int8", weights, allowed)
        verdict.float_layers, verdict.float_ops = float_layers, float_ops
        # Ops next to kept layers may stay float with them (TFLite places the DEQUANTIZE/QUANTIZE
        # pair around runs of float ops): allowed, and listed, when layers were kept float.
        stray = [n for n in float_layers if not allowed(n)] + ([] if keep_float else float_ops)
        if stray:
            verdict.problems.append(f"{len(stray)} ops compute in float (first: {stray[0]})")
    return verdict


# --- ONNX -----------------------------------------------------------------------------------------

_ONNX_WEIGHTED = ("Conv", "Gemm", "MatMul")


def _verify_onnx(path: Path, requested: str, keep_float: Collection[str]) -> PrecisionVerdict:
    import onnx

    graph = onnx.load(str(path)).graph
    initializers = {i.name: onnx.helper.tensor_dtype_to_np_dtype(i.data_type).name for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}

    def stored(name: str) -> str | None:
        """The dtype a tensor is stored in, looking through a DequantizeLinear."""
        if name in initializers:
            return initializers[name]
        node = producers.get(name)
        if node is not None and node.op_type == "DequantizeLinear":
            return stored(node.input[0])
        return None

    weighted = [n for n in graph.node if n.op_type in _ONNX_WEIGHTED]
    weights = {n.name: stored(n.input[1]) or "computed" for n in weighted}
    verdict = PrecisionVerdict(requested, dict(Counter(weights.values())))
    quantize_ops = sum(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.node)
    if requested == "fp32":
        _expect_weights(verdict, "float32", weights, lambda _n: False)
        if quantize_ops:
            verdict.problems.append(f"has {quantize_ops} QuantizeLinear/DequantizeLinear ops")
        return verdict
    allowed = _allowed(keep_float)
    _expect_weights(verdict, "int8", weights, allowed)
    unquantized = [n.name for n in weighted if weights[n.name] != "int8"
                   or getattr(producers.get(n.input[0]), "op_type", None) != "DequantizeLinear"]
    verdict.float_layers = unquantized
    stray = [n for n in unquantized if not allowed(n)]
    if stray:
        verdict.problems.append(f"{len(stray)} weighted layers compute in float (first: {stray[0]})")
    return verdict


# --- OpenVINO -------------------------------------------------------------------------------------

_OPENVINO_WEIGHTED = ("Convolution", "GroupConvolution", "MatMul")
_OPENVINO_PASS_THROUGH = ("Convert", "Multiply", "Subtract", "Reshape", "Transpose")


def _openvino_stored(node: Any, depth: int = 6) -> str:
    """The element type a weight is stored in: NNCF's int8 weights and fp16 compression sit
    behind Convert (and Subtract/Multiply for the scale); follow them to the Constant."""
    if node.get_type_name() == "Constant":
        return node.get_output_element_type(0).get_type_name()
    if depth == 0 or node.get_type_name() not in _OPENVINO_PASS_THROUGH:
        return "computed"
    return _openvino_stored(node.input_value(0).get_node(), depth - 1)


def _verify_openvino(path: Path, requested: str, keep_float: Collection[str]) -> PrecisionVerdict:
    from edgedeploy.inspect import feeds_from
    from edgedeploy.runtimes.openvino_runtime import read_ir

    ops = read_ir(path).get_ordered_ops()
    weighted = [op for op in ops if op.get_type_name() in _OPENVINO_WEIGHTED]
    names = {"f32": "float32", "f16": "float16", "i8": "int8", "u8": "uint8"}
    weights = {op.get_friendly_name(): names.get(s, s) for op in weighted
               for s in [_openvino_stored(op.input_value(1).get_node())]}
    verdict = PrecisionVerdict(requested, dict(Counter(weights.values())))
    fake_quantize = sum(op.get_type_name() == "FakeQuantize" for op in ops)
    if requested in ("fp32", "fp16"):
        _expect_weights(verdict, "float32" if requested == "fp32" else "float16", weights, lambda _n: False)
        if fake_quantize:
            verdict.problems.append(f"has {fake_quantize} FakeQuantize ops")
        return verdict
    allowed = _allowed(keep_float)
    _expect_weights(verdict, "int8", weights, allowed)
    unquantized = [op.get_friendly_name() for op in weighted if weights[op.get_friendly_name()] != "int8"
                   or not feeds_from(op.input_value(0).get_node(), "FakeQuantize")]
    verdict.float_layers = unquantized
    stray = [n for n in unquantized if not allowed(n)]
    if stray:
        verdict.problems.append(f"{len(stray)} weighted layers compute in float: float weights or no FakeQuantize "
                                f"on their input (first: {stray[0]})")
    return verdict


_VERIFIERS: dict[str, Callable[[Path, str, Collection[str]], PrecisionVerdict]] = {
    "litert": _verify_tflite,
    "onnxruntime": _verify_onnx,
    "openvino": _verify_openvino,
}


def verify_precision(runtime: str, path: Path, requested: str, keep_float: Collection[str] = ()) -> PrecisionVerdict:
    """Check the artifact at ``path`` (a ``runtime`` model) against the ``requested`` precision."""
    return _VERIFIERS[runtime](path, requested, keep_float)
