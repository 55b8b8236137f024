"""Precision proof for .tflite artifacts: weight dtypes and the ops that compute in float."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from pathlib import Path

import numpy as np

from edgedeploy.runtimes.litert.graph import IO_OPS, WEIGHTED_OPS, graph_ops, layer_name
from edgedeploy.runtimes.precision import PrecisionVerdict, allowed_float, expect_weights

__all__ = ["prove_precision"]

# TFLite's dynamic-range quantization leaves weights with fewer elements than this in float
# (documented converter behaviour: quantizing them saves nothing): allowed, and listed.
_TFLITE_DYNAMIC_MIN_ELEMENTS = 1024


def prove_precision(path: Path, requested: str, keep_float: Collection[str]) -> PrecisionVerdict:
    ops, tensor_list = graph_ops(path)
    tensors = {t["index"]: t for t in tensor_list}
    dtype = {i: np.dtype(t["dtype"]).name for i, t in tensors.items()}
    # fp16 weights are float16 constants behind a DEQUANTIZE: follow it to the stored dtype.
    dequantized_from = {op["outputs"][0]: op["inputs"][0] for op in ops if op["op_name"] == "DEQUANTIZE"}
    weights: dict[str, str] = {}
    small: set[str] = set()
    float_ops: list[str] = []
    float_layers: list[str] = []
    # Weighted layers by the dtype of the activations they take (int16 in 16x8 models).
    activations: dict[str, str] = {}
    allowed = allowed_float(keep_float)
    for op in ops:
        name = layer_name(tensors[op["outputs"][0]]["name"])
        if op["op_name"] in WEIGHTED_OPS:
            w = dequantized_from.get(op["inputs"][1], op["inputs"][1])
            weights[name] = dtype[w]
            if int(np.prod(tensors[w]["shape"])) < _TFLITE_DYNAMIC_MIN_ELEMENTS:
                small.add(name)
        if op["op_name"] in IO_OPS:
            continue
        computes_in_float = any(dtype[i] == "float32" for i in (op["inputs"][0], op["outputs"][0]))
        if op["op_name"] in WEIGHTED_OPS:
            activations[name] = dtype[op["inputs"][0]]
        if computes_in_float:
            (float_layers if op["op_name"] in WEIGHTED_OPS else float_ops).append(name)
    verdict = PrecisionVerdict(requested, dict(Counter(weights.values())))
    has_quantize_ops = any(op["op_name"] in IO_OPS for op in ops)
    if requested == "fp32":
        expect_weights(verdict, "float32", weights, lambda _n: False)
        if has_quantize_ops:
            verdict.problems.append("has QUANTIZE/DEQUANTIZE ops")
    elif requested == "fp16":
        expect_weights(verdict, "float16", weights, lambda _n: False)
    elif requested == "int8-weights":
        expect_weights(verdict, "int8", weights, small.__contains__)
        verdict.float_layers = sorted(n for n in small if weights[n] != "int8")
    else:
        expect_weights(verdict, "int8", weights, allowed)
        verdict.float_layers, verdict.float_ops = float_layers, float_ops
        # Ops next to kept layers may stay float with them (TFLite places the DEQUANTIZE/QUANTIZE
        # pair around runs of float ops): allowed, and listed, when layers were kept float.
        stray = [n for n in float_layers if not allowed(n)] + ([] if keep_float else float_ops)
        if stray:
            verdict.problems.append(f"{len(stray)} ops compute in float (first: {stray[0]})")
        if requested == "a16w8":
            narrow = [n for n, d in activations.items() if d != "int16" and not allowed(n)]
            if narrow:
                verdict.problems.append(f"{len(narrow)} weighted layers do not take int16 activations "
                                        f"(first: {narrow[0]} {activations[narrow[0]]})")
    return verdict
