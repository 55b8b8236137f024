"""Deployment recipes: one YAML file that describes a whole deployment, loaded and validated.

Loaded through edgedeploy.core.yamlfile (safe YAML, duplicate keys refused, strict schema);
the schema and the checks against the target and device registries report the first
problem as ``file:line: key.path: message``. Paths in a
recipe are relative to the recipe file; ``data:PATH`` is relative to the sample data
folder ($EDGEDEPLOY_DATA, else ./data or ../shared/data from the working directory),
so one recipe works on every checkout.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from edgedeploy.core import limits
from edgedeploy.core.errors import ConfigError
from edgedeploy.core.hashing import sha256_file
from edgedeploy.core.yamlfile import ConfigFileError as RecipeError
from edgedeploy.core.yamlfile import Lines, Section, load_yaml, validate
from edgedeploy.data.calibration import DATA_PREFIX
from edgedeploy.data.datasets import ImageSet
from edgedeploy.exporter.options import resolve_options
from edgedeploy.exporter.ptq import check_calibration
from edgedeploy.exporter.request import ExportRequest
from edgedeploy.exporter.targets import TARGETS, get_target
from edgedeploy.models import DEFAULT_MODEL, ModelConfig, model_task
from edgedeploy.recipes.model_source import RecipeModel, check_model_section
from edgedeploy.recipes.target_section import section_model, section_values
from edgedeploy.runtimes import LoadOptions
from edgedeploy.tasks import DataFormat, Task, get_task, task_rows

__all__ = ["Recipe", "RecipeSpec", "TargetSpec", "Thresholds", "load_recipe", "check_recipe", "RecipeError"]


class ModelSpec(Section):
    # A model registry name (edgedeploy.models), or a user module's factory "package.module:callable" (give its
    # input size as resolution).
    arch: str = DEFAULT_MODEL
    # None: the family's default (mobilenet_v2: 1.0, 224, 1000).
    width: float | None = Field(None, ge=limits.MIN_WIDTH, le=limits.MAX_WIDTH)
    resolution: int | None = Field(None, ge=limits.MIN_RESOLUTION, le=limits.MAX_RESOLUTION)
    num_classes: int | None = Field(None, ge=1, le=limits.MAX_CLASSES)
    # The family's own options (deeplabv3_mobilenet_v2: output_stride).
    options: dict[str, Any] | None = Field(None, strict=False)
    # sample | imagenet | random | module | a checkpoint path (relative to the recipe); None: the family's default
    # (sample; a user module's own parameters)
    weights: str | None = None
    # A user's module instead of a family: the Python module (importable from the recipe's folder or the working
    # directory) and its factory, a callable taking no arguments that returns the nn.Module.
    module: str | None = None
    factory: str | None = None
    # Or an ONNX file (relative to the recipe; ONNX-based targets only; give preprocessing mean/std).
    onnx: str | None = None
    # A module's (or a dynamic ONNX file's) input, 1,3,H,W; the same as resolution: H.
    input_shape: list[Annotated[int, Field(ge=1, le=limits.MAX_RESOLUTION)]] | None = Field(None, min_length=4,
                                                                                            max_length=4)

    @property
    def arch_name(self) -> str:
        return f"{self.module}:{self.factory}" if self.module else self.arch

    def config_values(self) -> dict[str, Any]:
        from edgedeploy.models.modules import input_resolution

        size = input_resolution(self.input_shape, "model.input_shape") if self.input_shape else self.resolution
        given = {"width": self.width, "resolution": size, "num_classes": self.num_classes}
        return {**{k: v for k, v in given.items() if v is not None}, **(self.options or {})}


class PreprocessingSpec(Section):
    """Overrides of the weights' normalization (R, G, B); by default the weights' own."""

    mean: list[Annotated[float, Field(ge=-limits.MAX_MEAN, le=limits.MAX_MEAN)]] | None = Field(
        None, min_length=3, max_length=3)
    std: list[Annotated[float, Field(gt=0, le=limits.MAX_STD)]] | None = Field(None, min_length=3, max_length=3)


# The calibration section (a recipe's, or a target's own): data, size, seed, from the export options.
CalibrationSpec = section_model("calibration")


class EvaluationSpec(Section):
    # Labeled data in the model's task's layout (classification: <wnid>/<image>; segmentation: images/ +
    # masks/ or PASCAL VOC).
    data: str
    # classification: the wnid list giving class indices.
    synsets: str | None = None
    # segmentation: the label not scored (default 255) and the masks' format (palette | label-ids).
    ignore_index: int | None = Field(None, ge=0, le=65535)
    mask_format: str | None = None
    # detection: a COCO annotations json (default: instances.json in the data folder).
    annotations: str | None = None
    limit: int | None = Field(None, ge=1, le=limits.MAX_IMAGES)
    batch_size: int = Field(16, ge=1, le=1024)
    # Where the targets' accuracy is measured: a device profile that runs in this process (cpu, or gpu: the gate
    # then checks the GPU run's drop against the float model on the CPU).
    device: str = Field("cpu", pattern=r"^[a-z0-9][a-z0-9._-]*$")


class BenchSpec(Section):
    runs: int = Field(100, ge=1, le=limits.MAX_RUNS)
    warmup: int = Field(10, ge=0, le=limits.MAX_WARMUP)
    # None: the device's default.
    threads: int | None = Field(None, ge=1, le=limits.MAX_THREADS)
    # Runs are timed in this many rounds, round-robin over the targets (recipes.interleaved).
    rounds: int = Field(5, ge=1, le=100)


# A task metric's thresholds: max_<metric>_drop (points lost against the float model on the evaluation
# data) and max_<metric>_regression (points lost against the baseline results, gate --baseline).
_METRIC_THRESHOLD = re.compile(r"^max_(\w+?)_(drop|regression)$")


class Thresholds(Section):
    """What the gate enforces; unset fields are not checked. Besides the fields below, each task's metric
    has two (max_top1_drop / max_top1_regression, max_miou_drop / max_miou_regression: the registered
    tasks' metrics)."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True, allow_inf_nan=False)

    # Agreement with the float model (the task's: top-1 per image, class per pixel), percent.
    min_agreement: float | None = Field(None, ge=0, le=100)
    # p50 latency on every bench device.
    max_latency_ms: float | None = Field(None, gt=0, le=limits.MAX_LATENCY_MS)
    # Artifact size (all its files), MiB.
    max_size_mb: float | None = Field(None, gt=0, le=limits.MAX_SIZE_MB)
    # Top-1 points lost against the baseline results (gate --baseline).
    max_top1_regression: float | None = Field(None, ge=0, le=100)
    # p50 of this target / p50 of the float target on its runtime, same device, same run.
    max_latency_ratio: float | None = Field(None, gt=0, le=limits.MAX_RATIO)
    # Set (e.g. 0.95): gate on confidence intervals, not point estimates (docs/commands/gate.md).
    confidence: float | None = Field(None, ge=0.5, lt=1)

    @model_validator(mode="after")
    def _metric_thresholds(self) -> Thresholds:
        metrics = {t.metric for t in task_rows()}
        for key, value in (self.model_extra or {}).items():
            match = _METRIC_THRESHOLD.match(key)
            if match is None or match.group(1) not in metrics:
                raise ValueError(f"unknown key {key!r} (metric thresholds: "
                                 f"{', '.join(f'max_{m}_drop, max_{m}_regression' for m in sorted(metrics))})")
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
                raise ValueError(f"{key} must be a number of points in [0, 100], got {value!r}")
        return self

    def metric_keys(self) -> list[str]:
        """The metric thresholds set here (max_<metric>_drop / _regression)."""
        return list(self.model_extra or {})

    def drop_limit(self, task: Task) -> float | None:
        return self._metric_limit(task.drop_threshold)

    def regression_limit(self, task: Task) -> float | None:
        return self._metric_limit(task.regression_threshold)

    def _metric_limit(self, key: str) -> float | None:
        # A metric threshold may be a declared field (max_top1_regression) or an extra key (the other metrics').
        value = getattr(self, key, None) if key in type(self).model_fields else (self.model_extra or {}).get(key)
        return None if value is None else float(value)

    def checked(self) -> dict[str, Any]:
        """The thresholds that check something without a baseline (regression limits and the confidence do not)."""
        return {k: v for k, v in self.model_dump(exclude_none=True, exclude={"confidence"}).items()
                if not k.endswith("_regression")}

    def merged(self, override: Thresholds) -> Thresholds:
        """These thresholds with the fields ``override`` sets explicitly replaced."""
        return self.model_copy(update={k: getattr(override, k) for k in override.model_fields_set})


# A target's section: its export options (recipe keys from edgedeploy.exporter.options, with the parity and
# calibration sub-sections) and the thresholds the gate enforces for it.
TargetSpec = section_model(extra={"thresholds": (Thresholds, Thresholds())})


class RecipeSpec(Section):
    # Also the default output folder's name, so it may not hold a path.
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)
    description: str = ""
    model: ModelSpec = ModelSpec()
    preprocessing: PreprocessingSpec = PreprocessingSpec()
    calibration: CalibrationSpec | None = None
    evaluation: EvaluationSpec
    targets: dict[str, TargetSpec] = Field(min_length=1)
    devices: list[str] = Field(["cpu"], min_length=1)
    bench: BenchSpec = BenchSpec()
    thresholds: Thresholds = Thresholds()

    @field_validator("targets", mode="before")
    @classmethod
    def _empty_target_means_defaults(cls, value: Any) -> Any:
        # "tflite-int8:" with nothing under it is YAML null: the target with default options.
        if isinstance(value, dict):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value


# ---------------------------------------------------------------- the loaded recipe


@dataclass(frozen=True)
class Recipe:
    spec: RecipeSpec
    path: Path
    sha256: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def model(self) -> RecipeModel:
        """The model section: family, module or ONNX file; the reference runner and cache content."""
        return RecipeModel(self.spec.model, self.path.parent, *self.mean_std, self.resolve)

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def task(self) -> Task:
        return get_task(model_task(self.config))

    @property
    def model_identity(self) -> dict[str, Any]:
        """What model the recipe describes, as results record it and the gate compares it: the resolved
        size, the weights, and the family options the recipe sets."""
        c, m = self.config, self.spec.model
        return {"arch": c.arch, "width": c.width, "resolution": c.resolution, "num_classes": c.num_classes,
                "weights": self.weights_name, **({"options": m.options} if m.options else {})}

    def data_format(self) -> DataFormat:
        ev = self.spec.evaluation
        return DataFormat(synsets=self.resolve(ev.synsets) if ev.synsets else None, ignore_index=ev.ignore_index,
                           mask_format=ev.mask_format,
                           annotations=self.resolve(ev.annotations) if ev.annotations else None)

    def open_evaluation_data(self) -> ImageSet:
        """The evaluation data (the recipe's limit applied), read as the model's task reads data."""
        ev = self.spec.evaluation
        return self.task.open_dataset(self.resolve(ev.data), self.data_format()).subset(ev.limit)

    @property
    def weights_name(self) -> str:
        return self.model.weights_name

    @property
    def weights(self) -> str:
        return self.model.weights

    def resolve(self, value: str) -> Path:
        """A path as written in the recipe -> a path usable from any working directory."""
        if value.startswith(DATA_PREFIX):
            from edgedeploy.core.sample_data import data_root

            return data_root() / value[len(DATA_PREFIX):]
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.path.parent / path).resolve()

    @property
    def mean_std(self) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
        pre = self.spec.preprocessing
        return (tuple(pre.mean) if pre.mean else None), (tuple(pre.std) if pre.std else None)

    def reference_options(self, threads: int) -> LoadOptions:
        return self.model.reference_options(threads)

    def thresholds(self, target: str) -> Thresholds:
        return self.spec.thresholds.merged(self.spec.targets[target].thresholds)

    def calibration(self, target: str) -> CalibrationSpec | None:
        return self.spec.targets[target].calibration or self.spec.calibration

    def export_request(self, target: str, out_dir: Path, threads: int) -> ExportRequest:
        calibration = self.calibration(target) if get_target(target).calibrated else None
        mean, std = self.mean_std
        onnx = self.resolve(self.spec.model.onnx) if self.spec.model.onnx else None
        options = section_values(self.spec.targets[target], calibration, self.resolve)
        # Parity compares on the evaluation data unless the target names its own.
        options.setdefault("parity_data", self.resolve(self.spec.evaluation.data))
        return ExportRequest(
            target=target, config=None if onnx else self.config, weights=self.weights_name if onnx else self.weights,
            onnx=onnx, input_size=self.config.resolution if onnx else None, out_dir=out_dir, mean=mean, std=std,
            **{**options, "threads": threads},
        )


def check_recipe(spec: RecipeSpec, lines: Lines, base: Path = Path(".")) -> None:
    """What the schema cannot know: the registries and the options each target takes (``base``: the recipe's
    folder, where a user's module is imported from)."""

    def fail(loc: Sequence[str | int], message: str) -> None:
        raise lines.error(loc, message)

    if (spec.preprocessing.mean is None) != (spec.preprocessing.std is None):
        fail(["preprocessing"], "give mean and std together")
    task, model_name = check_model_section(spec.model, spec.preprocessing.mean is not None, list(spec.targets),
                                           base, fail)
    _check_common(spec, lines, get_task(task), model_name)


def _check_common(spec: RecipeSpec, lines: Lines, task: Task, model_name: str) -> None:
    """The checks every model source shares: data options, thresholds, devices and targets for ``task``."""
    from edgedeploy.devices import driver_for, get_device

    def fail(loc: Sequence[str | int], message: str) -> None:
        raise lines.error(loc, message)

    wrong = [o for o in ("synsets", "ignore_index", "mask_format", "annotations")
             if getattr(spec.evaluation, o) is not None and o not in task.data_format_fields]
    if wrong:
        fail(["evaluation", wrong[0]], f"does not apply to {model_name} ({task.name} data takes: "
                                       f"{', '.join(task.data_format_fields) or 'no options'})")
    sections: list[tuple[list[str | int], Thresholds]] = [(["thresholds"], spec.thresholds)]
    sections += [(["targets", name, "thresholds"], t.thresholds) for name, t in spec.targets.items()]
    for loc, thresholds in sections:
        for key in thresholds.metric_keys():
            if key not in (task.drop_threshold, task.regression_threshold):
                fail([*loc, key], f"does not apply to {model_name}, a {task.name} model: its metric is "
                                  f"{task.metric_label} ({task.drop_threshold}, {task.regression_threshold})")
    try:
        eval_device = get_device(spec.evaluation.device)
    except ConfigError as exc:
        fail(["evaluation", "device"], str(exc))
    if not driver_for(eval_device).in_process:
        fail(["evaluation", "device"], f"{eval_device.name} does not run in this process: accuracy is measured "
                                       "here (cpu or gpu); its latency goes in devices")
    for i, device in enumerate(spec.devices):
        try:
            profile = get_device(device)
        except ConfigError as exc:
            fail(["devices", i], str(exc))
        if profile.emulated:
            fail(["devices", i], f"{device} is emulated: its latency is not device latency, so it is kept out of "
                                 "recipe results (use `edgedeploy eval/bench --device` on it)")
        missing = sorted({get_target(t).runtime for t in spec.targets if t in TARGETS} - set(profile.runtime_names))
        if missing:
            fail(["devices", i], f"{device} does not run {', '.join(missing)} models, which targets here need "
                                 f"(it runs {', '.join(profile.runtime_names)})")
    for name, section in spec.targets.items():
        calibration = section.calibration or spec.calibration
        try:
            target = get_target(name)
            options = resolve_options(target, section_values(section, calibration, Path))
        except ConfigError as exc:
            fail(["targets", name], str(exc))
        if options.max_drop is not None and options.val_dir is None:
            fail(["targets", name, "max_drop"], "needs accuracy_data: a labeled image folder to measure the drop on")
        if target.calibrated and calibration is None:
            fail(["targets", name], "an int8 target needs a calibration set: add a calibration: section")
        if options.ptq:
            try:
                check_calibration(options.ptq, options.calib_size)
            except ConfigError as exc:
                fail(["targets", name, "ptq"], str(exc))


def load_recipe(path: str | Path) -> Recipe:
    """Read, validate and check a recipe file; errors are RecipeError/InputFileError with file:line."""
    path = Path(path)
    data, lines = load_yaml(path, "recipe")
    spec = validate(RecipeSpec, data, lines)
    check_recipe(spec, lines, path.resolve().parent)
    return Recipe(spec=spec, path=path.resolve(), sha256=sha256_file(path))
