"""Precision proof for OpenVINO IR: weight dtypes and an int8 input (a FakeQuantize, or a Concat or MaxPool of
them) on every weighted layer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from pathlib import Path

from edgedeploy.runtimes.openvino.graph import ELEMENT_TYPES, WEIGHTED_OPS, quantized_input, stored_dtype
from edgedeploy.runtimes.openvino.runner import read_ir
from edgedeploy.runtimes.precision import PrecisionVerdict, allowed_float, expect_weights

__all__ = ["prove_precision"]


def prove_precision(path: Path, requested: str, keep_float: Collection[str]) -> PrecisionVerdict:
    ops = read_ir(path).get_ordered_ops()
    weighted = [op for op in ops if op.get_type_name() in WEIGHTED_OPS]
    weights = {op.get_friendly_name(): ELEMENT_TYPES.get(s, s) for op in weighted
               for s in [stored_dtype(op.input_value(1).get_node())]}
    verdict = PrecisionVerdict(requested, dict(Counter(weights.values())))
    fake_quantize = sum(op.get_type_name() == "FakeQuantize" for op in ops)
    if requested in ("fp32", "fp16"):
        expect_weights(verdict, "float32" if requested == "fp32" else "float16", weights, lambda _n: False)
        if fake_quantize:
            verdict.problems.append(f"has {fake_quantize} FakeQuantize ops")
        return verdict
    allowed = allowed_float(keep_float)
    expect_weights(verdict, "int8", weights, allowed)
    unquantized = [op.get_friendly_name() for op in weighted if weights[op.get_friendly_name()] != "int8"
                   or not quantized_input(op.input_value(0).get_node())]
    verdict.float_layers = unquantized
    stray = [n for n in unquantized if not allowed(n)]
    if stray:
        verdict.problems.append(f"{len(stray)} weighted layers compute in float: float weights or no FakeQuantize "
                                f"on their input (first: {stray[0]})")
    return verdict
