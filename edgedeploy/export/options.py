"""The typed options a converter receives: every value an export option may take, in one place.

The target registry (targets.py) lists which of these values each target offers and checks a
request against its row once; converters then read a ``TargetOptions`` and check nothing.
String enums, so a value compares equal to, hashes and prints as its command-line spelling.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

__all__ = ["IoDtype", "CalibMethod", "Precision", "InputLayout", "WeightGranularity", "PtqMethod", "TargetOptions"]


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
    """The precision export proves an artifact has (backends' precision verifiers)."""

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
    route then quantizes the prepared model (edgedeploy.export.ptq)."""

    # Cross-layer equalization (DFQ): per-channel weight ranges of conv pairs balanced; ReLU6 -> ReLU between them.
    CLE = "cle"
    # Empirical bias correction: each layer's output mean shift from weight rounding, measured and removed.
    BIAS_CORRECTION = "bias-correction"
    # Learned rounding (AdaRound) at the converters' own grid, baked into the float weights.
    ADAROUND = "adaround"


@dataclass(frozen=True)
class TargetOptions:
    """A request's target-specific options, checked against its target and defaults filled in."""

    # float32 for every target whose IO stays float.
    io_dtype: IoDtype = IoDtype.FLOAT32
    # None: the backend has a single method (TFLite's min/max) or the target does not calibrate.
    calib_method: CalibMethod | None = None
    # Accuracy-controlled quantization: max top-1 drop in points, measured on val_dir.
    max_drop: float | None = None
    val_dir: Path | None = None
    # Layers (names from `edgedeploy diagnose`) kept in float.
    keep_float: tuple[str, ...] = ()
    # None where the target does not offer a choice (its layout is fixed by its converter).
    input_layout: InputLayout | None = None
    # None where the target has no integer weights or does not offer a choice.
    weight_granularity: WeightGranularity | None = None
    # Quantization methods applied to the PyTorch model first, in the order they run (cle, adaround, bias-correction).
    ptq: tuple[PtqMethod, ...] = ()
