"""What the ONNX Runtime runtime knows about an ONNX graph."""

from __future__ import annotations

__all__ = ["WEIGHTED_OPS", "QDQ_OPS"]

# Ops that carry weights (input 1): checked by the precision proof, tapped with weights by diagnose.
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
