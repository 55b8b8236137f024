"""Precision proof for ONNX artifacts: weight dtypes and a DequantizeLinear on every weighted input."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from pathlib import Path

from edgedeploy.runtimes.onnxruntime.graph import QDQ_OPS, WEIGHTED_OPS
from edgedeploy.runtimes.precision import PrecisionVerdict, allowed_float, expect_weights

__all__ = ["prove_precision"]


def prove_precision(path: Path, requested: str, keep_float: Collection[str]) -> PrecisionVerdict:
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

    weighted = [n for n in graph.node if n.op_type in WEIGHTED_OPS]
    weights = {n.name: stored(n.input[1]) or "computed" for n in weighted}
    verdict = PrecisionVerdict(requested, dict(Counter(weights.values())))
    quantize_ops = sum(n.op_type in QDQ_OPS for n in graph.node)
    if requested == "fp32":
        expect_weights(verdict, "float32", weights, lambda _n: False)
        if quantize_ops:
            verdict.problems.append(f"has {quantize_ops} QuantizeLinear/DequantizeLinear ops")
        return verdict
    allowed = allowed_float(keep_float)
    expect_weights(verdict, "int8", weights, allowed)
    unquantized = [n.name for n in weighted if weights[n.name] != "int8"
                   or getattr(producers.get(n.input[0]), "op_type", None) != "DequantizeLinear"]
    verdict.float_layers = unquantized
    stray = [n for n in unquantized if not allowed(n)]
    if stray:
        verdict.problems.append(f"{len(stray)} weighted layers compute in float (first: {stray[0]})")
    return verdict
