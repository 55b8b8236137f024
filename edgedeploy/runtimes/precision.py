"""Proof that an artifact has the precision its target promises, read from the graph itself.

A converter can silently fall back (a float op left in an "int8" model, fp16 weights
that stayed fp32, a convolution NNCF skipped). After every export, each weighted layer
(convolution, depthwise convolution, fully-connected/MatMul) is checked:

- fp32: weights float32, no quantization ops.
- fp16: weights stored as float16 (dequantized to float32 at load).
- int8-weights: weights int8, activations float (TFLite dynamic range).
- int8: weights int8 and every compute op integer (TFLite); weights int8 and activations
  quantized (QuantizeLinear/DequantizeLinear in ONNX, FakeQuantize in OpenVINO).
- a16w8: weights int8, every compute op integer, weighted layers take int16 activations
  (TFLite 16x8).

Layers the user kept float (``--keep-float``) or that accuracy control put back are
allowed and listed. The verdict goes into the manifest; a target that produced the
wrong precision fails the export.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PrecisionVerdict", "ANY_LAYER", "expect_weights", "allowed_float"]

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


def expect_weights(verdict: PrecisionVerdict, dtype: str, layers: dict[str, str], allowed: Callable[[str], bool]) -> None:
    wrong = [name for name, d in layers.items() if d != dtype and not allowed(name)]
    if wrong:
        found = ", ".join(f"{n} {c}" for n, c in Counter(layers[w] for w in wrong).items())
        verdict.problems.append(f"{len(wrong)} of {len(layers)} weighted layers are not {dtype} ({found}; "
                                f"first: {wrong[0]})")
    if not layers:
        verdict.problems.append("no weighted layer found")


def allowed_float(keep_float: Collection[str]) -> Callable[[str], bool]:
    return (lambda _name: True) if ANY_LAYER in keep_float else (lambda name: name in keep_float)
