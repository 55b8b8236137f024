"""Every export option, declared once.

An :class:`ExportOption` says what an option is (name, kind, range, default, help), where a recipe sets it and
which targets take it. Everything else is derived from the declarations in :data:`EXPORT_OPTIONS`: the CLI's
click options (``edgedeploy.cli.export_options``), the fields of a recipe's target section
(``edgedeploy.recipes.target_section``), the keywords of ``edgedeploy.export(...)`` and :class:`ExportRequest`,
the check against the target with its defaults filled in (:func:`resolve_options`), and the manifest's
``export.options`` record. Adding an option is one declaration (or one :func:`register_option` call) plus the
code that uses it.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from edgedeploy.core import limits
from edgedeploy.core.errors import ConfigError
from edgedeploy.core.nms import NMS_MODES, POSTPROCESS
from edgedeploy.data.calibration import DEFAULT_CALIB_SEED, DEFAULT_CALIB_SIZE
from edgedeploy.exporter.choices import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, IoDtype, PtqMethod
from edgedeploy.exporter.option_values import ExportOptions
from edgedeploy.exporter.target import Target
from edgedeploy.exporter.targets import TARGETS, offered_values

__all__ = ["ExportOption", "EXPORT_OPTIONS", "register_option", "ExportOptions", "resolve_options", "check_values",
           "DEFAULT_PARITY_IMAGES", "DEFAULT_OPSET", "MIN_OPSET", "MAX_OPSET"]

# 100 images: agreement's 95% interval is about +-5 points at the 90-97% int8 MobileNetV2 reaches (enough to
# report the cost; the 50% unusable floor is decided with room from ~20 images up), and the fidelity SQNR over
# 100 outputs is stable to a fraction of a dB; an export's parity stays a few seconds (reference outputs cached).
DEFAULT_PARITY_IMAGES = 100

OptionKind = Literal["int", "float", "flag", "text", "path", "choice", "list"]
# A target-dependent check: (option, target, requested value, every requested value) -> the value to use.
Resolver = Callable[["ExportOption", Target, Any, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class ExportOption:
    """One export option: the single place its name, type, range, default, help and scope are written."""

    # The keyword of edgedeploy.export() and ExportRequest, and the key of the manifest's export.options.
    name: str
    kind: OptionKind
    help: str
    # The request's value when not given (None for most: the target's own default, see ``offered``).
    default: Any = None
    # Or made when a request is built (a value of the machine it runs on).
    default_factory: Callable[[], Any] | None = None
    # The command-line flag [default: --<name with dashes>].
    flag: str | None = None
    # Where a recipe's target section sets it: "max_drop", "parity.images", "calibration.size"; None: not in
    # recipes (CLI and API only).
    recipe: str | None = None
    # Numeric range (inclusive unless ``above_minimum``: the minimum itself is refused).
    minimum: float | None = None
    maximum: float | None = None
    above_minimum: bool = False
    # choice/list: every accepted value (what some target offers), read when asked so plugins' values count.
    values: Callable[[], list[str]] | None = None
    # The Target attribute listing the values a target offers (first: its default); empty: not offered there.
    offered: str | None = None
    # Which targets take the option (None: every target); given to another target it is an error.
    applies: Callable[[Target], bool] | None = None
    # A check of its own against the target (replaces the generic one), e.g. io_dtype with --keep-float.
    resolve: Resolver | None = None
    # choice: the enum a recipe's field takes (its values checked by the schema, at the key's own line).
    enum: type[Enum] | None = None
    # Recorded in the manifest's export.options (not: how the export ran, e.g. its threads).
    recorded: bool = True
    # list: comma-separated values split as well (--ptq cle,adaround).
    comma_separated: bool = False
    metavar: str | None = None
    # Shown in --help (its help text says the target-dependent defaults otherwise).
    show_default: bool = False

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def initial(self) -> Any:
        """The request's value when the caller gives none."""
        return self.default_factory() if self.default_factory is not None else self.default

    def takers(self) -> list[str]:
        """The registered targets that take this option."""
        return [t.name for t in TARGETS.values() if self.taken_by(t)]

    def taken_by(self, target: Target) -> bool:
        if self.offered is not None:
            return bool(getattr(target, self.offered))
        return self.applies is None or self.applies(target)

    def normalized(self, value: Any) -> Any:
        """``value`` as this option holds it (tuples for lists, Paths for paths), range-checked; ConfigError
        names the option."""
        if value is None:
            return None
        if self.kind == "list":
            items = [value] if isinstance(value, str) else list(value)
            if self.comma_separated:
                items = [v.strip() for item in items for v in str(item).split(",") if v.strip()]
            return tuple(str(v) for v in items)
        if self.kind == "path":
            return Path(value)
        if self.kind == "flag":
            if not isinstance(value, bool):
                raise ConfigError(f"{self.name} must be true or false, got {value!r}")
            return value
        if self.kind in ("int", "float"):
            # numbers.Real: numpy's scalars too; bool is an int to Python, never a number here.
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or (
                    self.kind == "int" and not float(value).is_integer()):
                raise ConfigError(f"{self.name} must be {'an integer' if self.kind == 'int' else 'a number'}, "
                                  f"got {value!r}")
            number = int(value) if self.kind == "int" else float(value)
            low_ok = self.minimum is None or (number > self.minimum if self.above_minimum else number >= self.minimum)
            high_ok = self.maximum is None or number <= self.maximum
            if not math.isfinite(number) or not (low_ok and high_ok):
                low = "(-inf" if self.minimum is None else f"{'(' if self.above_minimum else '['}{self.minimum:g}"
                high = "inf)" if self.maximum is None else f"{self.maximum:g}]"
                raise ConfigError(f"{self.name} must be in {low}, {high}, got {value!r}")
            return number
        return str(value.value if isinstance(value, Enum) else value)


def _applies_generically(option: ExportOption, target: Target, value: Any, _given: Mapping[str, Any]) -> Any:
    if value not in (None, (), option.default) and not option.taken_by(target):
        raise ConfigError(f"{option.cli_flag} does not apply to {target.name} (only to {', '.join(option.takers())})")
    return value


def _offered_choice(what: str) -> Resolver:
    """The requested value if the target offers it, else an error; none requested: the first it offers."""

    def resolve(option: ExportOption, target: Target, value: Any, _given: Mapping[str, Any]) -> Any:
        offered = getattr(target, option.offered or "")
        if value is None:
            return offered[0] if offered else None
        if value not in offered:
            raise ConfigError(f"{what} {value} does not apply to {target.name}; allowed: {', '.join(offered) or 'none'}")
        return type(offered[0])(value)

    return resolve


def _io_dtype(option: ExportOption, target: Target, value: Any, given: Mapping[str, Any]) -> IoDtype:
    """The artifact's IO dtype: the requested one if the target offers it, else its default."""
    if given.get("keep_float") and target.keep_float_io_dtype:
        if value not in (None, target.keep_float_io_dtype):
            raise ConfigError(f"{target.name} with --keep-float has {target.keep_float_io_dtype} IO (the runtime's "
                              f"selective quantization keeps float IO), not {value}")
        return target.keep_float_io_dtype
    if value is None:
        return target.io_dtypes[0] if target.io_dtypes else IoDtype.FLOAT32
    if value not in target.io_dtypes:
        allowed = ", ".join(target.io_dtypes) if target.io_dtypes else "none (its IO is float32)"
        raise ConfigError(f"io dtype {value} does not apply to {target.name}; allowed: {allowed}")
    return IoDtype(value)


def _max_drop(option: ExportOption, target: Target, value: Any, _given: Mapping[str, Any]) -> float | None:
    if value is not None and not target.calibrated:
        raise ConfigError(f"max drop (an accuracy requirement) does not apply to {target.name} (only to "
                          f"{', '.join(option.takers())})")
    return value


def _ptq(option: ExportOption, target: Target, value: Any, _given: Mapping[str, Any]) -> tuple[PtqMethod, ...]:
    from edgedeploy.exporter.ptq import resolve_methods

    return resolve_methods(tuple(value or ()), target.name, target.ptq_methods, option.takers())


def _fidelity_floor(option: ExportOption, target: Target, value: Any, _given: Mapping[str, Any]) -> float | None:
    if value is not None and not target.parity.quantized:
        raise ConfigError(f"--parity-min-fidelity applies to quantized targets; {target.name} is checked against the "
                          "float model (--parity-atol, --parity-min-agreement)")
    return value


def _values_of(attribute: str) -> Callable[[], list[str]]:
    return lambda: offered_values(attribute)


# The export options, in the order --help lists them.
EXPORT_OPTIONS: dict[str, ExportOption] = {o.name: o for o in (
    ExportOption("opset", "int", "ONNX opset.", default=DEFAULT_OPSET, minimum=MIN_OPSET, maximum=MAX_OPSET,
                 show_default=True),
    ExportOption("dynamic_batch", "flag", "Make the batch dimension dynamic (default: fixed batch 1).", default=False),
    ExportOption("parity_data", "path", "Images for the parity check [default: the sample calib split].",
                 recipe="parity.data"),
    ExportOption("parity_images", "int", "Images for fidelity and quantization cost (agreement with its 95% "
                 "interval).", default=DEFAULT_PARITY_IMAGES, recipe="parity.images", minimum=1, maximum=10_000,
                 show_default=True),
    ExportOption("parity_max_abs_diff", "float", "Max |logit diff| vs PyTorch [default: per target].",
                 flag="--parity-atol", recipe="parity.max_abs_diff", minimum=0, maximum=limits.MAX_DIFF,
                 above_minimum=True),
    ExportOption("parity_min_agreement", "float", "Min agreement with PyTorch (top-1, or per pixel), percent "
                 "[default: per target]; for int8 targets the floor that marks a model unusable, judged on the "
                 "interval's upper end [50].", recipe="parity.min_agreement", minimum=0, maximum=100),
    ExportOption("parity_min_fidelity_db", "float", "int8 targets: min SQNR (dB) of the artifact against its "
                 "quantization simulated on the host [default: 10].", flag="--parity-min-fidelity",
                 recipe="parity.min_fidelity_db", minimum=-limits.MAX_FIDELITY_DB, maximum=limits.MAX_FIDELITY_DB,
                 applies=lambda t: t.parity.quantized, resolve=_fidelity_floor),
    ExportOption("threads", "int", "Threads for the parity run.", minimum=1, maximum=limits.MAX_THREADS,
                 default_factory=lambda: os.cpu_count() or 1, recorded=False),
    ExportOption("calib_dir", "path", "Calibration images for int8 targets: a folder or a calibration/*.json "
                 "definition [default: the sample calib split].", flag="--calib", recipe="calibration.data"),
    ExportOption("calib_size", "int", "Calibration images to use.", default=DEFAULT_CALIB_SIZE,
                 recipe="calibration.size", minimum=1, maximum=limits.MAX_IMAGES, show_default=True),
    ExportOption("calib_seed", "int", "Seed of the class-stratified sample.", default=DEFAULT_CALIB_SEED,
                 recipe="calibration.seed", minimum=0, maximum=limits.MAX_SEED, show_default=True),
    ExportOption("io_dtype", "choice", "Input/output dtype of integer targets [default: int8]; uint8 takes raw "
                 "0-255 pixels.", recipe="io_dtype", values=_values_of("io_dtypes"), offered="io_dtypes",
                 resolve=_io_dtype, enum=IoDtype),
    ExportOption("calib_method", "choice", "Activation ranges: onnx-int8 (ONNX Runtime) minmax, percentile, entropy "
                 "[default: minmax]; openvino-int8 (NNCF) mean-minmax, minmax, mean-quantile, histogram [default: "
                 "mean-minmax]; tflite-int8 has only min/max.", recipe="calib_method",
                 values=_values_of("calib_methods"), offered="calib_methods",
                 resolve=_offered_choice("calibration method")),
    ExportOption("max_drop", "float", "int8 targets: the accuracy requirement, max drop of the task's metric "
                 "(top-1, mIoU) in points on --val (fails the export when not met; openvino-int8 meets it with "
                 "NNCF's accuracy control).", recipe="max_drop", minimum=0, maximum=100, above_minimum=True,
                 applies=lambda t: t.calibrated, resolve=_max_drop),
    # Without --max-drop it is not read, so any target takes it (a recipe may name it once for every target).
    ExportOption("val_dir", "path", "Labeled images for --max-drop.", flag="--val", recipe="accuracy_data"),
    ExportOption("keep_float", "list", "int8 targets: keep this layer in float (repeatable; names from "
                 "`edgedeploy diagnose`).", default=(), recipe="keep_float", metavar="LAYER",
                 applies=lambda t: t.keeps_float),
    ExportOption("input_layout", "choice", "litert-* targets: nhwc (camera frames, no TRANSPOSE) or nchw "
                 "(PyTorch's) [default: nhwc].", recipe="input_layout", values=_values_of("input_layouts"),
                 offered="input_layouts", resolve=_offered_choice("input layout")),
    ExportOption("weight_granularity", "choice", "int8 targets: per-channel, or per-tensor for NPUs/EdgeTPU that "
                 "need it [default: per-channel].", recipe="weight_granularity",
                 values=_values_of("weight_granularities"), offered="weight_granularities",
                 resolve=_offered_choice("weight granularity")),
    ExportOption("ptq", "list", "int8 targets: quantization methods applied to the PyTorch model first: cle "
                 "(cross-layer equalization), adaround (learned rounding), bias-correction; repeatable or "
                 "comma-separated.", default=(), recipe="ptq", values=_values_of("ptq_methods"),
                 offered="ptq_methods", resolve=_ptq, comma_separated=True, metavar="METHOD[,METHOD]"),
    # Detection models only (edgedeploy.exporter.detection checks the model): what the manifest's detection
    # head records, so eval, bench and the graph's own NMS use the same settings.
    ExportOption("postprocess", "choice", "Detection models: decode boxes and run NMS on the host from the raw "
                 "heads, or in the graph where the runtime has the operator (TFLite_Detection_PostProcess, ONNX "
                 "NonMaxSuppression) [default: host].", recipe="postprocess", values=lambda: list(POSTPROCESS)),
    ExportOption("nms_score_threshold", "float", "Detection models: lowest score kept [default: the model's].",
                 recipe="nms.score_threshold", minimum=0.0, maximum=1.0),
    ExportOption("nms_iou_threshold", "float", "Detection models: NMS drops boxes overlapping a better one by more "
                 "than this IoU [default: the model's].", recipe="nms.iou_threshold", minimum=0.0, maximum=1.0,
                 above_minimum=True),
    ExportOption("max_detections", "int", "Detection models: detections kept per image [default: the model's].",
                 recipe="nms.max_detections", minimum=1, maximum=10_000),
    ExportOption("nms_mode", "choice", "Detection models: fast (each anchor's best class, one class-agnostic NMS, "
                 "TFLite's default) or per-class NMS [default: the model's].", recipe="nms.mode",
                 values=lambda: list(NMS_MODES)),
)}


def register_option(option: ExportOption) -> ExportOption:
    """Declare an export option (a plugin's one call): it then appears in --help, recipes, the Python API and
    the manifest of commands and schemas built after this call."""
    if option.name in EXPORT_OPTIONS:
        raise ConfigError(f"export option {option.name!r} is already declared")
    EXPORT_OPTIONS[option.name] = option
    return option


def check_values(given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared option's value (the default where not given), normalized and range-checked; an unknown
    name is a ConfigError that lists the known ones."""
    unknown = sorted(set(given) - set(EXPORT_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown export option {', '.join(unknown)}; known: {', '.join(sorted(EXPORT_OPTIONS))}")
    return {name: option.normalized(given[name] if name in given else option.initial())
            for name, option in EXPORT_OPTIONS.items()}


def resolve_options(target: Target, given: Mapping[str, Any]) -> ExportOptions:
    """``given`` checked against ``target``, its defaults filled in: an option a target does not take is an
    error, not silently ignored."""
    values = check_values(given)
    return ExportOptions({name: (option.resolve or _applies_generically)(option, target, values[name], values)
                          for name, option in EXPORT_OPTIONS.items()})
