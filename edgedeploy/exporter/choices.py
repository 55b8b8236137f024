"""Every value an export option may take, as string enums: a value compares equal to, hashes and prints as its
command-line spelling. Each target row (``targets.py`` of each runtime) lists the values it offers."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DEFAULT_OPSET", "MIN_OPSET", "MAX_OPSET", "IoDtype", "CalibMethod", "Precision", "InputLayout", "WeightGranularity", "PtqMethod"]

DEFAULT_OPSET = 17
# 11 is the oldest opset with the Clip(min, max) inputs ReLU6 needs; 20 the newest the
# TorchScript exporter implements.
MIN_OPSET, MAX_OPSET = 11, 20


class IoDtype(StrEnum):
    """The dtype of an artifact's input and output tensors (--io-dtype)."""

    INT8 = "int8"
    # Raw 0-255 camera bytes in: normalization moves into the graph.
    UINT8 = "uint8"
    FLOAT32 = "float32"


class CalibMethod(StrEnum):
    """How activation ranges are estimated from the calibration set (--calib-method)."""

    MINMAX = "minmax"
    PERCENTILE = "percentile"
    ENTROPY = "entropy"
    # NNCF's range estimators beyond plain min/max.
    MEAN_MINMAX = "mean-minmax"
    MEAN_QUANTILE = "mean-quantile"
    HISTOGRAM = "histogram"
    # AI Edge Quantizer's default: an exponential moving average (0.95) of each sample's min/max.
    MOVING_AVERAGE = "moving-average"


class Precision(StrEnum):
    """The precision export proves an artifact has (runtimes' precision proofs)."""

    FP32 = "fp32"
    FP16 = "fp16"
    # int8 weights, float activations (dynamic-range quantization).
    INT8_WEIGHTS = "int8-weights"
    INT8 = "int8"
    # int16 activations, int8 weights (TFLite's 16x8 quantization).
    A16W8 = "a16w8"


class InputLayout(StrEnum):
    """Where the channels sit in the artifact's input (--input-layout), for targets that offer both."""

    NHWC = "nhwc"
    NCHW = "nchw"


class WeightGranularity(StrEnum):
    """One weight scale per output channel or per tensor (--weight-granularity); NPUs and the
    EdgeTPU need per-tensor."""

    PER_CHANNEL = "per-channel"
    PER_TENSOR = "per-tensor"


class PtqMethod(StrEnum):
    """Quantization methods applied to the PyTorch model before any route converts it (--ptq); every int8
    route then quantizes the prepared model (edgedeploy.exporter.ptq)."""

    # Cross-layer equalization (DFQ): per-channel weight ranges of conv pairs balanced; ReLU6 -> ReLU between them.
    CLE = "cle"
    # Empirical bias correction: each layer's output mean shift from weight rounding, measured and removed.
    BIAS_CORRECTION = "bias-correction"
    # Learned rounding (AdaRound) at the converters' own grid, baked into the float weights.
    ADAROUND = "adaround"
