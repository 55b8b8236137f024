"""What every task provides: its data options, an accumulator of metric sums and per-image records,
the evaluation result, and the task's row (``Task``). Torch-free (numpy only).

An accumulator keeps sums, not averages, so shards of one image set merge exactly (a sweep's Ray
tasks, ``measure.sharded``), and it keeps per-image records in evaluation order (the evidence a gate
pairs image by image). The comparison with a reference (the float model) is the same for every task:
argmax agreement over the output's class axis (per image for classification, per pixel for dense
outputs) and the largest and mean absolute logit difference.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgedeploy.core.errors import ConfigError, DataError
from edgedeploy.core.io_spec import OUTPUT_NAME, ModelIO, OutputSpec, Preprocessing
from edgedeploy.core.stats import Interval, PairedComparison, ratio_interval
from edgedeploy.data.datasets import ImageSet, LabeledImage

__all__ = ["DataFormat", "EvalResult", "Accumulator", "Records", "Task", "LAYOUT_GENERIC", "LAYOUT_SPECIFIC"]

# Per-image arrays of one model's evaluation (first axis: images, in evaluation order).
Records = dict[str, np.ndarray]
# Task.layout_match: a folder any image task could read (class folders), or one in this task's own layout.
LAYOUT_GENERIC, LAYOUT_SPECIFIC = 1, 2


@dataclass(frozen=True)
class DataFormat:
    """How to read a task's evaluation data (class list, ignored label, mask encoding); each task takes the
    fields it names in ``Task.data_format_fields``."""

    # classification: the wnid list giving class indices.
    synsets: Path | None = None
    # segmentation: the label that marks pixels not to score (VOC: 255).
    ignore_index: int | None = None
    # segmentation: palette (VOC's indexed PNGs), label-ids (grayscale ids), or None: either.
    mask_format: str | None = None
    # detection: a COCO annotations json (default: instances.json in the data folder).
    annotations: Path | None = None

    def given(self) -> list[str]:
        return [name for name, value in vars(self).items() if value is not None]


@dataclass
class EvalResult:
    """An evaluation's figures: the task's metrics and, against a reference, agreement and logit diffs.
    Percentages are 0-100. Metrics read as attributes too (``result.top1``)."""

    n: int
    skipped: int
    seconds: float
    metrics: dict[str, Any] = field(default_factory=dict)
    agreement: float | None = None
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None

    def __getattr__(self, name: str) -> Any:
        metrics = self.__dict__.get("metrics", {})
        if name in metrics:
            return metrics[name]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, **self.metrics, "skipped": self.skipped, "seconds": self.seconds,
                "agreement": self.agreement, "max_abs_diff": self.max_abs_diff, "mean_abs_diff": self.mean_abs_diff}


def pct(count: float, total: float) -> float | None:
    return round(100.0 * count / total, 4) if total else None


class Accumulator(ABC):
    """Running sums of one model's metrics over a set of images, and its per-image records."""

    # Sums every task keeps: images, reference comparison. Subclasses add their own in ``SUMS``.
    _COMMON: ClassVar[tuple[str, ...]] = ("n", "agree", "compared", "abs_diff_sum", "diff_count", "max_abs_diff")
    SUMS: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.n = self.agree = self.compared = self.diff_count = 0
        self.abs_diff_sum = self.max_abs_diff = 0.0
        self._records: dict[str, list[np.ndarray]] = {}

    @abstractmethod
    def _update(self, scores: np.ndarray, labels: list[Any], probabilities: tuple[bool, bool],
                reference: np.ndarray | None) -> None:
        """Add a batch's task metrics (and its per-image records, through ``_record``)."""

    @abstractmethod
    def _merge(self, other: Accumulator) -> None:
        """Add ``other``'s task sums."""

    @abstractmethod
    def metrics(self, with_reference: bool) -> dict[str, Any]:
        """The task's figures from the sums (None where undefined, e.g. accuracy without labels)."""

    def bind(self, io: ModelIO) -> Accumulator:
        """This accumulator reading the outputs of a model of ``io`` (a detector's post-processing is recorded
        there); the default reads outputs alone."""
        return self

    def update(self, scores: np.ndarray, items: list[LabeledImage], reference: np.ndarray | None = None,
               probabilities: tuple[bool, bool] = (False, False)) -> None:
        if reference is not None:
            self._compare(scores, reference)
        self._update(scores, [item.label for item in items], probabilities, reference)
        self.n += len(items)

    def _compare(self, scores: np.ndarray, reference: np.ndarray) -> None:
        if reference.shape != scores.shape:
            raise DataError(f"model and reference outputs differ in shape: {scores.shape[1:]} vs {reference.shape[1:]}")
        agree = (scores.argmax(-1) == reference.argmax(-1)).reshape(len(scores), -1)
        self.agree += int(agree.sum())
        self.compared += agree.size
        diff = np.abs(scores - reference)
        self.max_abs_diff = max(self.max_abs_diff, float(diff.max()))
        self.abs_diff_sum += float(diff.sum(dtype=np.float64))
        self.diff_count += diff.size
        self._record(agree=agree.sum(1).astype(np.int64), positions=np.full(len(scores), agree.shape[1], np.int64))

    def _record(self, **arrays: np.ndarray) -> None:
        for name, values in arrays.items():
            self._records.setdefault(name, []).append(values)

    def records(self) -> Records:
        return {name: np.concatenate(parts) for name, parts in self._records.items()}

    def merge(self, other: Accumulator) -> None:
        """Add ``other``'s sums and records (the next shard of the same data): counts merge exactly."""
        for name in ("n", "agree", "compared", "abs_diff_sum", "diff_count"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.max_abs_diff = max(self.max_abs_diff, other.max_abs_diff)
        self._merge(other)
        for name, parts in other._records.items():
            self._records.setdefault(name, []).extend(parts)

    def sums(self) -> dict[str, Any]:
        """The sums as JSON (arrays as lists), for a shard saved to disk."""
        return {name: (value.tolist() if isinstance(value, np.ndarray) else value)
                for name in (*self._COMMON, *self.SUMS) for value in [getattr(self, name)]}

    def load(self, sums: dict[str, Any], records: Records) -> Accumulator:
        """This accumulator holding a saved shard's sums and records."""
        for name, value in sums.items():
            setattr(self, name, np.asarray(value) if isinstance(value, list) else value)
        self._records = {name: [values] for name, values in records.items()}
        return self

    def result(self, skipped: int, seconds: float, with_reference: bool) -> EvalResult:
        res = EvalResult(n=self.n, skipped=skipped, seconds=round(seconds, 3), metrics=self.metrics(with_reference))
        if with_reference and self.n:
            res.agreement = pct(self.agree, self.compared)
            res.max_abs_diff = self.max_abs_diff
            res.mean_abs_diff = self.abs_diff_sum / max(self.diff_count, 1)
        return res


class Task(ABC):
    """A task's row: what its model's output means and how it is measured, compared and shown."""

    name: ClassVar[str]
    description: ClassVar[str]
    # The figure gates, reports and sweeps quote (a key of the evaluation result), and how it reads.
    metric: ClassVar[str]
    metric_label: ClassVar[str]
    # What "agreement" with the float model counts: images (top-1) or pixels.
    agreement_label: ClassVar[str]
    # The PyTorch model's output: None (a score per class) or a layout (a score map per class).
    output_layout: ClassVar[str | None] = None
    # The DataFormat fields this task's data reader takes.
    data_format_fields: ClassVar[tuple[str, ...]] = ()
    # Records that describe the ground truth: equal in every model's evaluation of the same images.
    label_records: ClassVar[tuple[str, ...]] = ()
    # Images a report shows as pictures (``pictures``); 0: none.
    report_images: ClassVar[int] = 0

    @property
    def drop_threshold(self) -> str:
        return f"max_{self.metric}_drop"

    @property
    def regression_threshold(self) -> str:
        return f"max_{self.metric}_regression"

    @abstractmethod
    def preprocessing(self, resolution: int, mean: tuple[float, ...], std: tuple[float, ...],
                      raw_pixels: bool = False) -> Preprocessing:
        """How an image becomes this task's model input at ``resolution``."""

    def output_specs(self, config: Any) -> tuple[OutputSpec, ...]:
        """The outputs a model of this task has, in its forward pass's order: one score per class (or a
        score map) by default."""
        return (OutputSpec(OUTPUT_NAME, config.num_classes, layout=self.output_layout),)

    def io_extra(self, config: Any) -> dict[str, Any]:
        """What reading the outputs needs beyond the specs (recorded in the manifest with them)."""
        return {}

    @abstractmethod
    def layout_match(self, path: Path) -> int:
        """0: not a folder this task reads as labeled data; LAYOUT_GENERIC: one any task's images could be
        in (class folders); LAYOUT_SPECIFIC: this task's own layout (e.g. images with masks)."""

    @abstractmethod
    def _open(self, path: Path, options: DataFormat) -> ImageSet:
        """Read the data set at ``path`` (this task's layouts, or a flat folder of unlabeled images)."""

    @abstractmethod
    def accumulator(self) -> Accumulator:
        """An empty accumulator of this task's metrics."""

    @abstractmethod
    def paired(self, reference: Records, candidate: Records, confidence: float) -> PairedComparison | None:
        """The candidate's metric drop against the reference's on the same labeled images (None: unlabeled)."""

    def open_dataset(self, path: str | Path, options: DataFormat = DataFormat()) -> ImageSet:
        """The evaluation data at ``path``; ConfigError (exit 2) when it is another task's data set or an
        option this task does not take is set."""
        from edgedeploy.tasks import task_rows

        path = Path(path)
        wrong = [o for o in options.given() if o not in self.data_format_fields]
        if wrong:
            raise ConfigError(f"{', '.join(wrong)} does not apply to {self.name} data "
                              f"(it takes: {', '.join(self.data_format_fields) or 'no options'})")
        own = self.layout_match(path)
        other = max((t for t in task_rows() if t.name != self.name), key=lambda t: t.layout_match(path), default=None)
        if other is not None and other.layout_match(path) > own:
            raise ConfigError(f"{path}: a {other.name} data set ({other.describe_layout()}), but the model is a "
                              f"{self.name} model: it needs {self.describe_layout()}")
        return self._open(path, options)

    def describe_layout(self) -> str:
        """The data layouts this task reads, for messages."""
        return "a folder of images"

    def agreement_interval(self, candidate: Records, confidence: float) -> Interval | None:
        """Agreement with the float model (percent of argmax positions) with its interval over images."""
        if "agree" not in candidate or not len(candidate["agree"]):
            return None
        return ratio_interval(candidate["agree"], candidate["positions"], confidence)

    def reorder(self, records: Records, order: np.ndarray) -> Records:
        """``records`` with their images in ``order`` (positions into the current order): every record is one
        row per image unless the task keeps variable-length ones."""
        return {name: values[order] for name, values in records.items()}

    def same_labels(self, a: Records, b: Records) -> bool:
        """Whether two evaluations saw the same ground truth, image by image."""
        return all(np.array_equal(a[k], b[k]) for k in self.label_records if k in a or k in b)

    def pictures(self, images: list[LabeledImage], predictions: dict[str, np.ndarray],
                 out_dir: Path) -> dict[str, Any] | None:
        """Pictures for the report (None: the task shows none): ``predictions`` are each model's
        outputs on ``images``."""
        return None

    def host_step(self, io: ModelIO) -> Any:
        """The work a model of ``io`` leaves to the host after the runtime (a callable of the raw outputs by name),
        timed by ``bench`` beside the model; None: the model's outputs are the answer."""
        return None

    def picture_outputs(self, io: ModelIO, outputs: Any) -> Any:
        """What ``pictures`` receives of one model: its outputs, or with what reading them needs (a detector's
        post-processing is in its ``io``)."""
        return outputs

    def prediction_writer(self, out_dir: Path) -> Any:
        """A callable (scores, items) that writes predictions as files (eval --save-predictions);
        None: the task writes none."""
        return None
