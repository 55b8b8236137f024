"""How a model is fed and read: preprocessing, input tensor spec, output spec.

These dataclasses are what a manifest records and what every runner consumes, so
a model is always fed exactly as it was exported.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgedeploy.core.errors import ConfigError

__all__ = [
    "Preprocessing",
    "Quantization",
    "InputSpec",
    "OutputSpec",
    "ModelIO",
    "Outputs",
    "OUTPUT_LAYOUTS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CROP_FRACTION",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "RESIZE_MODES",
    "DEFAULT_TASK",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Resize to resolution / 0.875 then center-crop: 256 -> 224, the standard ImageNet protocol.
CROP_FRACTION = 0.875
# The tensor names of every graph edgedeploy exports: NCHW float input, class-score output.
INPUT_NAME, OUTPUT_NAME = "input", "logits"

LAYOUTS = ("NCHW", "NHWC")
# An output's layout: None (a score per class, flattened to (N, classes)), NCHW/NHWC (a score map per class), or
# "tensor" (kept as the runtime returns it, batch first: a detector's per-anchor boxes and scores).
OUTPUT_LAYOUTS = (None, *LAYOUTS, "tensor")
# How an image becomes the model's square input: the shorter side resized and the centre cropped
# (classification), or the whole image resized to the input (dense prediction: every pixel is scored).
RESIZE_MODES = ("center-crop", "stretch")
DEFAULT_TASK = "classification"


@dataclass(frozen=True)
class Preprocessing:
    """Image -> normalized tensor: resize (shorter side to ``resize`` then a ``crop`` centre crop, or the
    whole image to ``crop`` x ``crop`` with ``resize_mode`` stretch), then (p/255 - mean) / std.

    ``raw_pixels`` means the model takes pixels 0..255 unchanged (normalization, if
    any, is folded into the model); mean/std are then ignored.
    """

    resize: int
    crop: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    channel_order: str = "RGB"
    raw_pixels: bool = False
    resize_mode: str = "center-crop"

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ConfigError(f"unknown resize mode {self.resize_mode!r}; expected one of {RESIZE_MODES}")

    @classmethod
    def for_resolution(
        cls,
        resolution: int,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        raw_pixels: bool = False,
    ) -> Preprocessing:
        if len(mean) != 3 or len(std) != 3:
            raise ConfigError("--mean and --std take exactly three values (R G B)")
        if any(s <= 0 for s in std):
            raise ConfigError(f"std values must be positive, got {tuple(std)}")
        return cls(
            resize=math.floor(resolution / CROP_FRACTION),
            crop=resolution,
            mean=tuple(float(m) for m in mean),  # type: ignore[arg-type]
            std=tuple(float(s) for s in std),  # type: ignore[arg-type]
            raw_pixels=raw_pixels,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        return cls(
            resize=int(data["resize"]),
            crop=int(data["crop"]),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            interpolation=data.get("interpolation", "bilinear"),
            channel_order=data.get("channel_order", "RGB"),
            raw_pixels=bool(data.get("raw_pixels", False)),
            resize_mode=data.get("resize_mode", "center-crop"),
        )


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: real = (q - zero_point) * scale."""

    scale: float
    zero_point: int

    def quantize(self, real: np.ndarray, dtype: np.dtype) -> np.ndarray:
        info = np.iinfo(dtype)
        q = np.round(real / self.scale) + self.zero_point
        return np.clip(q, info.min, info.max).astype(dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (q.astype(np.float32) - self.zero_point) * np.float32(self.scale)


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    layout: str = "NCHW"
    quantization: Quantization | None = None

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ConfigError(f"unknown layout {self.layout!r}; expected one of {LAYOUTS}")

    @property
    def resolution(self) -> int:
        return self.shape[2] if self.layout == "NCHW" else self.shape[1]

    def feed(self, images_hwc: np.ndarray) -> np.ndarray:
        """Preprocessed float images (N, H, W, C) -> the exact tensor this input takes."""
        x = images_hwc if self.layout == "NHWC" else images_hwc.transpose(0, 3, 1, 2)
        dtype = np.dtype(self.dtype)
        if self.quantization is not None:
            return np.ascontiguousarray(self.quantization.quantize(x, dtype))
        if np.issubdtype(dtype, np.integer):
            return np.ascontiguousarray(np.clip(np.round(x), 0, 255).astype(dtype))
        return np.ascontiguousarray(x.astype(dtype))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        q = data.get("quantization")
        return cls(
            name=data["name"],
            shape=tuple(int(s) for s in data["shape"]),
            dtype=data.get("dtype", "float32"),
            layout=data.get("layout", "NCHW"),
            quantization=Quantization(float(q["scale"]), int(q["zero_point"])) if q else None,
        )


@dataclass(frozen=True)
class OutputSpec:
    name: str
    num_classes: int
    # A 1001-way classifier (TF-slim convention) puts "background" at index 0.
    background_class: bool = False
    # Some published models end in Softmax; metrics then must not apply it again.
    probabilities: bool = False
    dtype: str = "float32"
    quantization: Quantization | None = None
    # None: one score per class (N, classes); NCHW or NHWC: a score map per class (dense prediction); "tensor":
    # any shape, batch first, read as it is.
    layout: str | None = None
    # The runtime's name for this output where a converter renamed it (onnx2tf's ``Identity_1``); None: ``name``.
    tensor: str | None = None

    def __post_init__(self) -> None:
        if self.layout not in OUTPUT_LAYOUTS:
            raise ConfigError(f"unknown output layout {self.layout!r}; expected one of {OUTPUT_LAYOUTS}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["tensor"] is None:
            del d["tensor"]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputSpec:
        q = data.get("quantization")
        return cls(
            name=data["name"],
            num_classes=int(data["num_classes"]),
            background_class=bool(data.get("background_class", False)),
            probabilities=bool(data.get("probabilities", False)),
            dtype=data.get("dtype", "float32"),
            quantization=Quantization(float(q["scale"]), int(q["zero_point"])) if q else None,
            layout=data.get("layout"),
            tensor=data.get("tensor"),
        )

    def read(self, raw: np.ndarray) -> np.ndarray:
        """Raw output tensor -> float scores over the model's real classes: (N, classes), or for a
        dense output (N, H, W, classes) whatever layout the runtime returns."""
        if self.layout == "NCHW":
            out = raw.transpose(0, 2, 3, 1)
        elif self.layout in ("NHWC", "tensor"):
            out = raw
        else:
            out = raw.reshape(raw.shape[0], -1)
        out = self.quantization.dequantize(out) if self.quantization else out.astype(np.float32)
        return out[..., 1:] if self.background_class else out


# What a model answers for a batch: its one output's array, or for a model with several outputs (a detector's
# boxes and scores) each output's array by name.
Outputs = np.ndarray | dict[str, np.ndarray]


@dataclass(frozen=True)
class ModelIO:
    """Everything needed to feed a model and read its answer.

    ``output`` is the model's first output (a classifier's or segmenter's only one); a model with several
    outputs lists the others in ``more_outputs``, in the graph's order, each by its own name.
    """

    input: InputSpec
    output: OutputSpec
    preprocessing: Preprocessing
    # The task whose metrics, parity and gate apply (edgedeploy.tasks): what the output means.
    task: str = DEFAULT_TASK
    extra: dict[str, Any] = field(default_factory=dict)
    more_outputs: tuple[OutputSpec, ...] = ()

    def __post_init__(self) -> None:
        names = [spec.name for spec in self.outputs]
        if len(set(names)) != len(names):
            raise ConfigError(f"output names must differ, got {names}")

    @property
    def outputs(self) -> tuple[OutputSpec, ...]:
        return (self.output, *self.more_outputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.outputs)

    def read(self, raw: dict[str, np.ndarray]) -> Outputs:
        """A runtime's raw outputs by name -> the model's outputs read by their specs (one array for a model
        with one output)."""
        if not self.more_outputs:
            return self.output.read(raw[self.output.name])
        return {spec.name: spec.read(raw[spec.name]) for spec in self.outputs}

    def outputs_to_dict(self) -> dict[str, Any]:
        """The manifest's record of the outputs: ``output``, and ``more_outputs`` where there are more."""
        record: dict[str, Any] = {"output": self.output.to_dict()}
        if self.more_outputs:
            record["more_outputs"] = [spec.to_dict() for spec in self.more_outputs]
        return record
