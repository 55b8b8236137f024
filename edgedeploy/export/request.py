"""What an export is asked to do: a plain, torch-free value (recipes and the CLI build one)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from edgedeploy.data.calibration import DEFAULT_CALIB_SEED, DEFAULT_CALIB_SIZE
from edgedeploy.models import ModelConfig
from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config

__all__ = ["ExportRequest", "DEFAULT_PARITY_IMAGES", "DEFAULT_OPSET", "MIN_OPSET", "MAX_OPSET"]

# 100 images: agreement's 95% interval is about +-5 points at the 90-97% int8 MobileNetV2 reaches (enough to
# report the cost; the 50% unusable floor is decided with room from ~20 images up), and the fidelity SQNR over
# 100 outputs is stable to a fraction of a dB; an export's parity stays a few seconds (reference outputs cached).
DEFAULT_PARITY_IMAGES = 100
DEFAULT_OPSET = 17
# 11 is the oldest opset with the Clip(min, max) inputs ReLU6 needs; 20 the newest the
# TorchScript exporter implements.
MIN_OPSET, MAX_OPSET = 11, 20


@dataclass(frozen=True)
class ExportRequest:
    target: str
    # None with ``onnx``: the size and class count come from the ONNX file.
    config: ModelConfig | None = MobileNetV2Config()
    weights: str = "sample"
    out_dir: Path = Path("artifacts")
    name: str | None = None
    opset: int = DEFAULT_OPSET
    dynamic_batch: bool = False
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    # None: the sample calib split if present, else random pixels.
    parity_data: Path | None = None
    parity_images: int = DEFAULT_PARITY_IMAGES
    # Override the target's default tolerance.
    parity_max_abs_diff: float | None = None
    parity_min_agreement: float | None = None
    parity_min_fidelity_db: float | None = None
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    # Calibrated (int8) targets: None = the sample calib split if present, else an error.
    calib_dir: Path | None = None
    calib_size: int = DEFAULT_CALIB_SIZE
    calib_seed: int = DEFAULT_CALIB_SEED
    # Integer targets: the artifact's input/output dtype (None: the target's default).
    io_dtype: str | None = None
    # Calibration method where the backend offers several (onnx-int8).
    calib_method: str | None = None
    # Quantized targets: the accuracy requirement, max drop of the task's metric in points on val_dir
    # (openvino-int8: NNCF's accuracy-controlled quantization meets it).
    max_drop: float | None = None
    val_dir: Path | None = None
    # int8 targets: layers (names from `edgedeploy diagnose`) kept in float.
    keep_float: tuple[str, ...] = ()
    # Direct TFLite routes: nhwc or nchw input (None: the target's default).
    input_layout: str | None = None
    # Integer targets: per-channel or per-tensor weight scales (None: the target's default).
    weight_granularity: str | None = None
    # int8 targets: quantization methods applied to the PyTorch model before conversion (cle, adaround,
    # bias-correction).
    ptq: tuple[str, ...] = ()
    # ONNX in: export this ONNX file (ONNX-based targets) instead of a PyTorch model; ``input_size`` fixes its
    # dynamic spatial dims.
    onnx: Path | None = None
    input_size: int | None = None
