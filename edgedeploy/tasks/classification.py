"""Image classification: class folders (``<wnid>/<image>``), top-1/top-5 accuracy, paired by McNemar's
test on per-image correctness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.io_spec import Preprocessing
from edgedeploy.core.stats import PairedComparison, paired_accuracy
from edgedeploy.data.datasets import IMAGE_SUFFIXES, ImageFolder, ImageSet
from edgedeploy.tasks.base import LAYOUT_GENERIC, Accumulator, DataFormat, Records, Task, pct

__all__ = ["Classification", "ClassificationAccumulator", "top5_classes", "cosine_similarity", "NO_LABEL"]

# The label record of an unlabeled image.
NO_LABEL = -1
_EPS = 1e-12


def top5_classes(scores: np.ndarray) -> np.ndarray:
    """Each row's five highest classes (fewer with fewer classes), best first. A stable sort breaks ties
    (common in quantized outputs) by the lower class, as argmax does, so top-1 and agreement agree."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :5].astype(np.int32)


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _as_probabilities(scores: np.ndarray, already: bool) -> np.ndarray:
    if already:
        p = np.clip(scores, 0.0, None)
        return p / np.maximum(p.sum(axis=1, keepdims=True), _EPS)
    return _softmax(scores)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (N, C) score arrays, scale-free: each row is divided by its own norm first, in
    float64, so tiny outputs (norms near 1e-7, whose product underflows a fixed floor) are measured like any
    other. Two zero rows are identical (1.0); a zero row against a non-zero one shares no direction (0.0)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    norm_a, norm_b = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both = (norm_a > 0) & (norm_b > 0)
    unit_a = a / np.where(both, norm_a, 1.0)[:, None]
    unit_b = b / np.where(both, norm_b, 1.0)[:, None]
    return np.where(both, (unit_a * unit_b).sum(axis=1), np.where((norm_a == 0) & (norm_b == 0), 1.0, 0.0))


class ClassificationAccumulator(Accumulator):
    """Top-1/top-5 over labeled images; against a reference also KL and cosine of the scores."""

    SUMS = ("labeled", "top1", "top5", "kl", "cosine")

    def __init__(self) -> None:
        super().__init__()
        self.labeled = self.top1 = self.top5 = 0
        self.kl = self.cosine = 0.0

    def _update(self, scores: np.ndarray, labels: list[Any], probabilities: tuple[bool, bool],
                reference: np.ndarray | None) -> None:
        top5 = top5_classes(scores)
        for row, label in zip(top5, labels):
            if label is not None:
                self.labeled += 1
                self.top1 += int(row[0] == label)
                self.top5 += int(label in row)
        self._record(labels=np.array([NO_LABEL if label is None else label for label in labels], np.int32), top5=top5)
        if reference is None:
            return
        p = _as_probabilities(scores, probabilities[0])
        q = _as_probabilities(reference, probabilities[1])
        # KL(reference || model): how much information the model loses about the reference's belief.
        self.kl += float((q * (np.log(q + _EPS) - np.log(p + _EPS))).sum(axis=1).sum())
        self.cosine += float(cosine_similarity(scores, reference).sum())

    def _merge(self, other: Accumulator) -> None:
        assert isinstance(other, ClassificationAccumulator)
        for name in self.SUMS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def metrics(self, with_reference: bool) -> dict[str, Any]:
        figures: dict[str, Any] = {"top1": pct(self.top1, self.labeled), "top5": pct(self.top5, self.labeled)}
        if with_reference and self.n:
            figures.update(kl=self.kl / self.n, cosine=self.cosine / self.n)
        else:
            figures.update(kl=None, cosine=None)
        return figures


class Classification(Task):
    name = "classification"
    description = "image classification: top-1/top-5 on class folders, agreement = same top-1 class"
    metric, metric_label = "top1", "top-1"
    agreement_label = "top-1 agreement"
    data_format_fields = ("synsets",)
    label_records = ("labels",)

    def preprocessing(self, resolution: int, mean: tuple[float, ...], std: tuple[float, ...],
                      raw_pixels: bool = False) -> Preprocessing:
        """Resize to resolution / 0.875, centre crop: the standard ImageNet protocol."""
        return Preprocessing.for_resolution(resolution, mean, std, raw_pixels)

    def layout_match(self, path: Path) -> int:
        """Class folders: subfolders holding image files."""
        try:
            return LAYOUT_GENERIC if any(d.is_dir() and any(f.suffix.lower() in IMAGE_SUFFIXES for f in d.iterdir())
                                         for d in path.iterdir()) else 0
        except OSError:
            return 0

    def describe_layout(self) -> str:
        return "class folders <class>/<image>, or a flat folder of images"

    def _open(self, path: Path, options: DataFormat) -> ImageSet:
        return ImageFolder.open(path, options.synsets)

    def accumulator(self) -> Accumulator:
        return ClassificationAccumulator()

    def paired(self, reference: Records, candidate: Records, confidence: float) -> PairedComparison | None:
        labels = reference["labels"]
        if not len(labels) or (labels == NO_LABEL).any():
            return None
        return paired_accuracy(reference["top5"][:, 0] == labels, candidate["top5"][:, 0] == labels, confidence)
