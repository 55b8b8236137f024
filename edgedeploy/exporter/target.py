"""One export target: a row that a runtime's ``targets.py`` declares (edgedeploy.exporter.converters.<runtime>).

A row names the converter (``module:function``, imported lazily, or the function itself) that turns the
simplified ONNX graph (or, for direct routes, the PyTorch module) into the artifact, the runtime that loads the
artifact, the parity tolerance the artifact must meet against PyTorch, and the option values it offers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from edgedeploy.core.errors import DependencyError
from edgedeploy.exporter.choices import CalibMethod, InputLayout, IoDtype, Precision, PtqMethod, WeightGranularity
from edgedeploy.exporter.tolerance import ParityTolerance

if TYPE_CHECKING:
    from edgedeploy.exporter.context import Conversion, ExportContext

__all__ = ["Target", "Converter", "PER_CHANNEL_FIRST", "NHWC_FIRST", "EVERY_PTQ_METHOD"]

# Per-channel first: per-tensor collapses MobileNetV2 (its depthwise weights' ranges differ by
# orders of magnitude per channel; 0-6% agreement with float at 96 px on every runtime, measured).
PER_CHANNEL_FIRST = (WeightGranularity.PER_CHANNEL, WeightGranularity.PER_TENSOR)
# NHWC first: the layout of camera frames and of TFLite's kernels (NCHW input adds a TRANSPOSE).
NHWC_FIRST = (InputLayout.NHWC, InputLayout.NCHW)
# Every int8 route takes every method: they prepare the PyTorch model before any converter sees it.
EVERY_PTQ_METHOD = tuple(PtqMethod)


class Converter(Protocol):
    """Writes the artifact ``dst`` from the simplified ONNX graph ``src`` (None for targets whose
    source is the PyTorch module, ``ctx.torch_model``); says what it built."""

    def __call__(self, src: Path | None, dst: Path, ctx: ExportContext, /) -> Conversion: ...


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    # Appended to the model stem: "mobilenet_v2_1_224" + ".onnx"
    file_suffix: str
    # A registered runtime (edgedeploy.runtimes) with a precision proof.
    runtime: str
    # "module:function", imported on first use so a missing extra fails only for its targets; or the function.
    converter: str | Converter
    parity: ParityTolerance
    extra: str | None = None
    # Needs a calibration set (post-training quantization of activations).
    calibrated: bool = False
    # Accepted --io-dtype values, first is the default; empty: the IO stays float32.
    io_dtypes: tuple[IoDtype, ...] = ()
    # Accepted --calib-method values, first is the default; empty: the runtime's only method.
    calib_methods: tuple[CalibMethod, ...] = ()
    # Its converter meets --max-drop/--val itself (accuracy-controlled quantization); every calibrated target
    # checks the requirement after parity (edgedeploy.exporter.requirement).
    accuracy_control: bool = False
    # The precision export must prove the artifact has.
    precision: Precision = Precision.FP32
    # Takes --keep-float LAYER (layers named by `edgedeploy diagnose` stay float).
    keeps_float: bool = False
    # The IO dtype of a model with float layers, where the runtime fixes it (TFLite: float32).
    keep_float_io_dtype: IoDtype | None = None
    # What the converter starts from: the simplified ONNX graph, or the PyTorch module itself
    # (direct routes: no ONNX export, no onnxsim).
    source: Literal["onnx", "pytorch"] = "onnx"
    # Accepted --input-layout values, first is the default; empty: fixed by the converter.
    input_layouts: tuple[InputLayout, ...] = ()
    # Accepted --weight-granularity values, first is the default; empty: fixed by the converter.
    weight_granularities: tuple[WeightGranularity, ...] = ()
    # Accepted --ptq methods (applied to the PyTorch model before conversion); empty: none.
    ptq_methods: tuple[PtqMethod, ...] = ()
    # The fp32 target of the same runtime (and route) that this one's speed-up and accuracy cost are quoted
    # against; None: this target is its own float baseline.
    float_target: str | None = None
    # ``module:function`` (artifact path, detection head) that rewrites the artifact so its graph decodes and
    # suppresses a detector's boxes itself (the runtime's own NMS operator); None: the runtime has none here.
    graph_postprocess: str | None = None

    def artifact_name(self, stem: str) -> str:
        return stem + self.file_suffix

    @property
    def float_baseline(self) -> str:
        """The float target this one is compared with (itself for a float target)."""
        return self.float_target or self.name

    def load_converter(self) -> Converter:
        if not isinstance(self.converter, str):
            return self.converter
        module_name, func = self.converter.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            hint = f"pip install 'edgedeploy[{self.extra}]'" if self.extra else "reinstall edgedeploy"
            raise DependencyError(f"target {self.name} needs {exc.name}: {hint}") from None
        converter: Converter = getattr(module, func)
        return converter
