"""The export-target registry: one row per target, so adding a format touches one place.

Each row names the converter (``module:function``, imported lazily, or the function itself)
that turns the simplified ONNX graph (or, for direct routes, the PyTorch module) into the artifact, the runtime that loads the artifact,
the parity tolerance the artifact must meet against PyTorch, and the options it takes. A new
target on an existing runtime is one ``register_target`` call and one converter function.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

from edgedeploy.backends import get_runtime
from edgedeploy.core.errors import ConfigError, DependencyError
from edgedeploy.export.options import (
    CalibMethod,
    InputLayout,
    IoDtype,
    Precision,
    PtqMethod,
    TargetOptions,
    WeightGranularity,
)
from edgedeploy.export.tolerance import QUANTIZED_PARITY, ParityTolerance

if TYPE_CHECKING:
    from edgedeploy.export.context import Conversion, ExportContext

__all__ = ["ParityTolerance", "Target", "Converter", "TARGETS", "register_target", "get_target", "target_names",
           "io_dtype_names", "calib_method_names", "input_layout_names", "weight_granularity_names",
           "ptq_method_names", "float_counterpart"]

_Choice = TypeVar("_Choice", CalibMethod, InputLayout, WeightGranularity)


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
    # A registered runtime (edgedeploy.backends) with a precision proof.
    runtime: str
    # "module:function", imported on first use so a missing extra fails only for its targets; or the function.
    converter: str | Converter
    parity: ParityTolerance
    extra: str | None = None
    # Needs a calibration set (post-training quantization of activations).
    calibrated: bool = False
    # Accepted --io-dtype values, first is the default; empty: the IO stays float32.
    io_dtypes: tuple[IoDtype, ...] = ()
    # Accepted --calib-method values, first is the default; empty: the backend's only method.
    calib_methods: tuple[CalibMethod, ...] = ()
    # Its converter meets --max-drop/--val itself (accuracy-controlled quantization); every calibrated target
    # checks the requirement after parity (edgedeploy.export.requirement).
    accuracy_control: bool = False
    # The precision export must prove the artifact has.
    precision: Precision = Precision.FP32
    # Takes --keep-float LAYER (layers named by `edgedeploy diagnose` stay float).
    keeps_float: bool = False
    # The IO dtype of a model with float layers, where the backend fixes it (TFLite: float32).
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

    def artifact_name(self, stem: str) -> str:
        return stem + self.file_suffix

    def validated_options(
        self,
        io_dtype: str | None = None,
        calib_method: str | None = None,
        max_drop: float | None = None,
        val_dir: Path | None = None,
        keep_float: tuple[str, ...] = (),
        input_layout: str | None = None,
        weight_granularity: str | None = None,
        ptq: tuple[str, ...] = (),
    ) -> TargetOptions:
        """The requested options checked against this target, its defaults filled in.

        Options that only some targets take are errors elsewhere, not silently ignored.
        """
        resolved_io_dtype = self._io_dtype(io_dtype, keep_float)
        if keep_float and not self.keeps_float:
            allowed = ", ".join(t.name for t in TARGETS.values() if t.keeps_float)
            raise ConfigError(f"--keep-float does not apply to {self.name} (only to {allowed})")
        if max_drop is not None and not self.calibrated:
            allowed = ", ".join(t.name for t in TARGETS.values() if t.calibrated)
            raise ConfigError(f"max drop (an accuracy requirement) does not apply to {self.name} (only to {allowed})")
        if max_drop is not None and max_drop <= 0:
            raise ConfigError(f"max drop must be positive (top-1 points), got {max_drop}")
        return TargetOptions(
            io_dtype=resolved_io_dtype,
            calib_method=self._choice("calibration method", calib_method, self.calib_methods, CalibMethod),
            max_drop=max_drop, val_dir=val_dir, keep_float=tuple(keep_float),
            input_layout=self._choice("input layout", input_layout, self.input_layouts, InputLayout),
            weight_granularity=self._choice("weight granularity", weight_granularity, self.weight_granularities,
                                            WeightGranularity),
            ptq=self._ptq(ptq),
        )

    def _ptq(self, requested: tuple[str, ...]) -> tuple[PtqMethod, ...]:
        from edgedeploy.export.ptq import resolve_methods

        return resolve_methods(requested, self.name, self.ptq_methods, [t.name for t in TARGETS.values() if t.ptq_methods])

    def _choice(self, what: str, requested: str | None, offered: tuple[_Choice, ...],
                kind: type[_Choice]) -> _Choice | None:
        """``requested`` if this target offers it, else an error; None requested: the first offered."""
        if requested is None:
            return offered[0] if offered else None
        if requested not in offered:
            raise ConfigError(f"{what} {requested} does not apply to {self.name}; "
                              f"allowed: {', '.join(offered) or 'none'}")
        return kind(requested)

    def _io_dtype(self, requested: str | None, keep_float: tuple[str, ...]) -> IoDtype:
        """The artifact's IO dtype: ``requested`` if this target offers it, else its default."""
        if keep_float and self.keep_float_io_dtype:
            if requested not in (None, self.keep_float_io_dtype):
                raise ConfigError(f"{self.name} with --keep-float has {self.keep_float_io_dtype} IO (the backend's "
                                  f"selective quantization keeps float IO), not {requested}")
            return self.keep_float_io_dtype
        if requested is None:
            return self.io_dtypes[0] if self.io_dtypes else IoDtype.FLOAT32
        if requested not in self.io_dtypes:
            allowed = ", ".join(self.io_dtypes) if self.io_dtypes else "none (its IO is float32)"
            raise ConfigError(f"io dtype {requested} does not apply to {self.name}; allowed: {allowed}")
        return IoDtype(requested)

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


# The first target registered for each runtime is its fp32 baseline (see float_counterpart).
TARGETS: dict[str, Target] = {}
# Per-channel first: per-tensor collapses MobileNetV2 (its depthwise weights' ranges differ by
# orders of magnitude per channel; 0-6% agreement with float at 96 px on every backend, measured).
_GRANULARITIES = (WeightGranularity.PER_CHANNEL, WeightGranularity.PER_TENSOR)
# Absolute min/max first: the quantizer's own moving average clips the logits (README, measured).
_AEQ_CALIB_METHODS = (CalibMethod.MINMAX, CalibMethod.MOVING_AVERAGE)
# NHWC first: the layout of camera frames and of TFLite's kernels (NCHW input adds a TRANSPOSE).
_LAYOUTS = (InputLayout.NHWC, InputLayout.NCHW)
# Every int8 route takes every method: they prepare the PyTorch model before any converter sees it.
_PTQ = tuple(PtqMethod)


def register_target(target: Target) -> Target:
    """Add a target row (a plugin's one call); its name must be new, its runtime registered."""
    if target.name in TARGETS:
        raise ConfigError(f"target {target.name!r} is already registered")
    runtime = get_runtime(target.runtime)
    if runtime.precision is None:
        raise ConfigError(f"target {target.name}: runtime {runtime.name} has no precision proof to export to")
    if target.precision is not Precision.FP32 and not any(t.runtime == target.runtime for t in TARGETS.values()):
        raise ConfigError(f"target {target.name}: the first target of runtime {target.runtime} is its float "
                          f"baseline and must be fp32, not {target.precision}")
    TARGETS[target.name] = target
    return target


for _target in (
    Target(
        name="onnx",
        description="ONNX fp32, simplified with onnxsim (ONNX Runtime)",
        file_suffix=".onnx",
        runtime="onnxruntime",
        converter="edgedeploy.export.converters.onnx:as_artifact",
        # fp32 kernels differ only in summation order: ~1e-5 on logits of magnitude ~20.
        parity=ParityTolerance(max_abs_diff=1e-3, min_agreement=99.0),
    ),
    Target(
        name="tflite-fp32",
        description="TFLite fp32 via onnx2tf, NHWC input (LiteRT)",
        file_suffix="_float32.tflite",
        runtime="litert",
        converter="edgedeploy.export.converters.tflite:to_tflite_fp32",
        parity=ParityTolerance(max_abs_diff=1e-3, min_agreement=99.0),
        extra="tflite",
    ),
    Target(
        name="tflite-fp16",
        description="TFLite with fp16 weights, float compute (LiteRT)",
        file_suffix="_float16.tflite",
        runtime="litert",
        converter="edgedeploy.export.converters.tflite:to_tflite_fp16",
        precision=Precision.FP16,
        # fp16 rounding of weights moves logits by ~0.05; near-ties may flip.
        parity=ParityTolerance(max_abs_diff=0.5, min_agreement=95.0),
        extra="tflite",
    ),
    Target(
        name="tflite-dynamic",
        description="TFLite dynamic range: int8 weights, float activations (LiteRT)",
        file_suffix="_dynamic.tflite",
        runtime="litert",
        converter="edgedeploy.export.converters.tflite:to_tflite_dynamic",
        precision=Precision.INT8_WEIGHTS,
        parity=QUANTIZED_PARITY,
        extra="tflite",
    ),
    Target(
        name="tflite-int8",
        description="TFLite full-integer PTQ: int8 weights (per-channel by default) and activations (LiteRT)",
        file_suffix="_int8.tflite",
        runtime="litert",
        converter="edgedeploy.export.converters.tflite:to_tflite_int8",
        precision=Precision.INT8,
        keeps_float=True,
        keep_float_io_dtype=IoDtype.FLOAT32,
        parity=QUANTIZED_PARITY,
        extra="tflite",
        calibrated=True,
        io_dtypes=(IoDtype.INT8, IoDtype.UINT8, IoDtype.FLOAT32),
        weight_granularities=_GRANULARITIES,
        ptq_methods=_PTQ,
    ),
    Target(
        name="openvino-fp32",
        description="OpenVINO IR fp32 (.xml + .bin), CPU plugin",
        file_suffix="_fp32.xml",
        runtime="openvino",
        converter="edgedeploy.export.converters.openvino:to_openvino_fp32",
        parity=ParityTolerance(max_abs_diff=1e-3, min_agreement=99.0),
        extra="openvino",
    ),
    Target(
        name="openvino-fp16",
        description="OpenVINO IR with fp16-compressed weights, CPU plugin",
        file_suffix="_fp16.xml",
        runtime="openvino",
        converter="edgedeploy.export.converters.openvino:to_openvino_fp16",
        precision=Precision.FP16,
        parity=ParityTolerance(max_abs_diff=0.5, min_agreement=95.0),
        extra="openvino",
    ),
    Target(
        name="openvino-int8",
        description="OpenVINO IR int8 via NNCF post-training quantization (--max-drop: accuracy control)",
        file_suffix="_int8.xml",
        runtime="openvino",
        converter="edgedeploy.export.converters.openvino:to_openvino_int8",
        precision=Precision.INT8,
        keeps_float=True,
        # NNCF's activation range estimators; the first is NNCF's own default.
        calib_methods=(CalibMethod.MEAN_MINMAX, CalibMethod.MINMAX, CalibMethod.MEAN_QUANTILE,
                       CalibMethod.HISTOGRAM),
        parity=QUANTIZED_PARITY,
        extra="openvino",
        calibrated=True,
        accuracy_control=True,
        ptq_methods=_PTQ,
    ),
    Target(
        name="onnx-int8",
        description="ONNX QDQ int8 via ONNX Runtime static quantization, int8 weights (per-channel by default)",
        file_suffix="_int8.onnx",
        runtime="onnxruntime",
        converter="edgedeploy.export.converters.onnx_int8:to_onnx_int8",
        precision=Precision.INT8,
        keeps_float=True,
        parity=QUANTIZED_PARITY,
        calibrated=True,
        calib_methods=(CalibMethod.MINMAX, CalibMethod.PERCENTILE, CalibMethod.ENTROPY),
        weight_granularities=_GRANULARITIES,
        ptq_methods=_PTQ,
    ),
    # Direct PyTorch routes: no ONNX in between.
    Target(
        name="litert-fp32",
        description="TFLite fp32 straight from PyTorch via litert-torch, NHWC input by default (LiteRT)",
        file_suffix="_litert_float32.tflite",
        runtime="litert",
        converter="edgedeploy.export.converters.litert_torch:to_litert_fp32",
        parity=ParityTolerance(max_abs_diff=1e-3, min_agreement=99.0),
        extra="litert-torch",
        source="pytorch",
        input_layouts=_LAYOUTS,
    ),
    Target(
        name="litert-int8",
        description="TFLite int8 (weights, activations, IO) via litert-torch + AI Edge Quantizer (LiteRT)",
        file_suffix="_litert_int8.tflite",
        runtime="litert",
        converter="edgedeploy.export.converters.litert_torch:to_litert_int8",
        precision=Precision.INT8,
        parity=QUANTIZED_PARITY,
        extra="litert-torch",
        calibrated=True,
        keeps_float=True,
        source="pytorch",
        input_layouts=_LAYOUTS,
        calib_methods=_AEQ_CALIB_METHODS,
        weight_granularities=_GRANULARITIES,
        ptq_methods=_PTQ,
    ),
    Target(
        name="litert-a16w8",
        description="TFLite 16x8: int16 activations, int8 weights, via litert-torch + AI Edge Quantizer (LiteRT)",
        file_suffix="_litert_a16w8.tflite",
        runtime="litert",
        converter="edgedeploy.export.converters.litert_torch:to_litert_a16w8",
        precision=Precision.A16W8,
        parity=QUANTIZED_PARITY,
        extra="litert-torch",
        calibrated=True,
        keeps_float=True,
        source="pytorch",
        input_layouts=_LAYOUTS,
        calib_methods=_AEQ_CALIB_METHODS,
        weight_granularities=_GRANULARITIES,
        ptq_methods=_PTQ,
    ),
    Target(
        name="executorch-fp32",
        description="ExecuTorch .pte fp32, torch.export + XNNPACK delegate (ExecuTorch runtime)",
        file_suffix="_xnnpack_fp32.pte",
        runtime="executorch",
        converter="edgedeploy.export.converters.executorch:to_executorch_fp32",
        parity=ParityTolerance(max_abs_diff=1e-3, min_agreement=99.0),
        extra="executorch",
        source="pytorch",
    ),
    Target(
        name="executorch-int8",
        description="ExecuTorch .pte int8 via PT2E with the XNNPACK quantizer, XNNPACK delegate (ExecuTorch runtime)",
        file_suffix="_xnnpack_int8.pte",
        runtime="executorch",
        converter="edgedeploy.export.converters.executorch:to_executorch_int8",
        precision=Precision.INT8,
        parity=QUANTIZED_PARITY,
        extra="executorch",
        calibrated=True,
        source="pytorch",
        weight_granularities=_GRANULARITIES,
        ptq_methods=_PTQ,
    ),
):
    register_target(_target)


def float_counterpart(name: str) -> str:
    """The float target on ``name``'s runtime that speed-ups are quoted against: the fp32 target of the
    same route (source) if there is one, else the runtime's first (its fp32 baseline)."""
    target = get_target(name)
    same_runtime = [t for t in TARGETS.values() if t.runtime == target.runtime]
    same_route = [t for t in same_runtime if t.source == target.source and t.precision is Precision.FP32]
    return (same_route or same_runtime)[0].name


def target_names() -> list[str]:
    return list(TARGETS)


def io_dtype_names() -> list[str]:
    """Every --io-dtype some target takes (each target checks its own)."""
    return list(dict.fromkeys(d.value for t in TARGETS.values() for d in t.io_dtypes))


def calib_method_names() -> list[str]:
    """Every --calib-method some target takes (each target checks its own)."""
    return list(dict.fromkeys(m.value for t in TARGETS.values() for m in t.calib_methods))


def input_layout_names() -> list[str]:
    return list(dict.fromkeys(v.value for t in TARGETS.values() for v in t.input_layouts))


def weight_granularity_names() -> list[str]:
    return list(dict.fromkeys(v.value for t in TARGETS.values() for v in t.weight_granularities))


def ptq_method_names() -> list[str]:
    return list(dict.fromkeys(v.value for t in TARGETS.values() for v in t.ptq_methods))


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}") from None
