"""Precision proof for .pte artifacts, read from the XNNPACK graphs inside the file.

fp32: every weighted node's filter is fp32 and no value is quantized. int8: every weighted
node's filter is int8 (``qcint8`` per-channel or ``qint8`` per-tensor) and its input is a
quantized activation. Ops that run outside the delegate (portable kernels compute in float)
are listed, not failed: they carry no weights.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from pathlib import Path

from edgedeploy.runtimes.executorch.graph import WEIGHTED_NODES, delegation_summary, tensor_dtype, xnnpack_graphs
from edgedeploy.runtimes.precision import PrecisionVerdict, allowed_float, expect_weights

__all__ = ["prove_precision", "weight_dtypes"]

# XNNPACK's integer datatypes, as a plain dtype name.
_INT8 = {"qint8": "int8", "qcint8": "int8", "qdint8": "int8", "quint8": "uint8"}


def weight_dtypes(path: Path) -> list[tuple[str, str, str]]:
    """(node, filter dtype, input dtype) of every weighted node, XNNPACK's datatype names."""
    rows = []
    for d, graph in enumerate(xnnpack_graphs(path)):
        for i, node in enumerate(graph["xnodes"]):
            if node["xnode_union_type"] in WEIGHTED_NODES:
                fields = node["xnode_union"]
                rows.append((f"delegate{d}/{i}:{node['xnode_union_type'].removeprefix('XNN')}",
                             tensor_dtype(graph, fields["filter_id"]), tensor_dtype(graph, fields["input1_id"])))
    return rows


def prove_precision(path: Path, requested: str, keep_float: Collection[str]) -> PrecisionVerdict:
    rows = weight_dtypes(path)
    weights = {name: _INT8.get(w, "float32" if w == "fp32" else w) for name, w, _ in rows}
    verdict = PrecisionVerdict(requested, dict(Counter(weights.values())))
    portable = list(delegation_summary(path)["portable_ops"])
    if requested == "fp32":
        expect_weights(verdict, "float32", weights, lambda _n: False)
        quantized = [name for name, w, x in rows if w in _INT8 or x in _INT8]
        if quantized:
            verdict.problems.append(f"{len(quantized)} weighted nodes are quantized (first: {quantized[0]})")
        return verdict
    allowed = allowed_float(keep_float)
    expect_weights(verdict, "int8", weights, allowed)
    verdict.float_layers = [name for name, _, x in rows if x not in _INT8]
    verdict.float_ops = portable
    stray = [n for n in verdict.float_layers if not allowed(n)]
    if stray:
        verdict.problems.append(f"{len(stray)} weighted nodes take float activations (first: {stray[0]})")
    return verdict
