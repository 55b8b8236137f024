"""Accuracy of a runner on an image folder, and its agreement with a reference runner.

Images are decoded and preprocessed in small batches and metrics are accumulated
as they stream by, so memory stays flat in the number of images.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edgedeploy.backends.base import Runner
from edgedeploy.core.errors import DataError
from edgedeploy.core.io_spec import Preprocessing
from edgedeploy.data.datasets import ImageFolder, LabeledImage
from edgedeploy.data.preprocess import preprocess

__all__ = ["EvalResult", "MetricAccumulator", "accumulate", "evaluate", "top5_classes", "DEFAULT_BATCH"]

DEFAULT_BATCH = 16
_EPS = 1e-12


def _softmax(scores: np.ndarray) -> np.ndarray:
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def top5_classes(scores: np.ndarray) -> np.ndarray:
    """Each row's five highest classes (fewer with fewer classes), best first. A stable sort breaks ties
    (common in quantized outputs) by the lower class, as argmax does, so top-1 and agreement agree."""
    return np.argsort(-scores, axis=1, kind="stable")[:, :5].astype(np.int32)


def _as_probabilities(scores: np.ndarray, already: bool) -> np.ndarray:
    if already:
        p = np.clip(scores, 0.0, None)
        return p / np.maximum(p.sum(axis=1, keepdims=True), _EPS)
    return _softmax(scores)


@dataclass
class EvalResult:
    n: int
    top1: float | None
    top5: float | None
    skipped: int
    seconds: float
    agreement: float | None = None
    kl: float | None = None
    cosine: float | None = None
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


class MetricAccumulator:
    """Running sums for accuracy and model-vs-reference agreement (all percentages 0-100)."""

    def __init__(self) -> None:
        self.n = self.labeled = self.top1 = self.top5 = self.agree = 0
        self.kl = self.cosine = self.abs_diff_sum = 0.0
        self.max_abs_diff = 0.0
        self.diff_count = 0

    def update(
        self,
        scores: np.ndarray,
        labels: list[int | None],
        reference: np.ndarray | None = None,
        probabilities: tuple[bool, bool] = (False, False),
    ) -> None:
        self.n += len(scores)
        for row, label in zip(top5_classes(scores), labels):
            if label is not None:
                self.labeled += 1
                self.top1 += int(row[0] == label)
                self.top5 += int(label in row)
        if reference is None:
            return
        if reference.shape != scores.shape:
            raise DataError(f"model and reference disagree on the class count: {scores.shape[1]} vs {reference.shape[1]}")
        self.agree += int((scores.argmax(1) == reference.argmax(1)).sum())
        p = _as_probabilities(scores, probabilities[0])
        q = _as_probabilities(reference, probabilities[1])
        # KL(reference || model): how much information the model loses about the reference's belief.
        self.kl += float((q * (np.log(q + _EPS) - np.log(p + _EPS))).sum(axis=1).sum())
        num = (scores * reference).sum(axis=1)
        den = np.linalg.norm(scores, axis=1) * np.linalg.norm(reference, axis=1)
        self.cosine += float((num / np.maximum(den, _EPS)).sum())
        diff = np.abs(scores - reference)
        self.max_abs_diff = max(self.max_abs_diff, float(diff.max()))
        self.abs_diff_sum += float(diff.sum())
        self.diff_count += diff.size

    def merge(self, other: MetricAccumulator) -> None:
        """Add ``other``'s sums (another shard of the same data): counts, and so top-1/top-5/agreement,
        merge exactly; the float sums (KL, cosine, mean |diff|) up to summation order."""
        for name in ("n", "labeled", "top1", "top5", "agree", "kl", "cosine", "abs_diff_sum", "diff_count"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.max_abs_diff = max(self.max_abs_diff, other.max_abs_diff)

    def result(self, skipped: int, seconds: float, with_reference: bool) -> EvalResult:
        pct = lambda k, n: round(100.0 * k / n, 4) if n else None  # noqa: E731
        res = EvalResult(
            n=self.n, top1=pct(self.top1, self.labeled), top5=pct(self.top5, self.labeled),
            skipped=skipped, seconds=round(seconds, 3),
        )
        if with_reference and self.n:
            res.agreement = pct(self.agree, self.n)
            res.kl = self.kl / self.n
            res.cosine = self.cosine / self.n
            res.max_abs_diff = self.max_abs_diff
            res.mean_abs_diff = self.abs_diff_sum / max(self.diff_count, 1)
        return res


def _batches(images: Iterable[LabeledImage], size: int) -> Iterator[list[LabeledImage]]:
    batch: list[LabeledImage] = []
    for item in images:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def accumulate(
    runner: Runner,
    dataset: ImageFolder,
    reference: Runner | np.ndarray | None = None,
    batch_size: int = DEFAULT_BATCH,
    on_progress: Callable[[int], None] | None = None,
    on_scores: Callable[[np.ndarray, list[Path]], None] | None = None,
) -> MetricAccumulator:
    """The metric sums of ``runner`` on ``dataset`` (see ``evaluate``); sums of shards of one image
    set merge (``MetricAccumulator.merge``) into the sums of the whole set."""
    acc = MetricAccumulator()
    for batch in _batches(dataset, batch_size):
        # Each model gets its own preprocessing; identical specs are computed once.
        cache: dict[Preprocessing, np.ndarray] = {}

        def inputs(spec: Preprocessing) -> np.ndarray:
            if spec not in cache:
                cache[spec] = np.stack([preprocess(item.image, spec) for item in batch])
            return cache[spec]

        scores = runner.predict(inputs(runner.io.preprocessing))
        if on_scores:
            on_scores(scores, [item.path for item in batch])
        ref_probabilities = False
        if isinstance(reference, np.ndarray):
            ref_scores = reference[acc.n:acc.n + len(batch)]
            if len(ref_scores) != len(batch):
                raise DataError(f"{dataset.root}: the reference scores cover {len(reference)} images, the data has more")
        elif reference is not None:
            ref_scores = reference.predict(inputs(reference.io.preprocessing))
            ref_probabilities = reference.io.output.probabilities
        else:
            ref_scores = None
        acc.update(scores, [item.label for item in batch], ref_scores,
                   (runner.io.output.probabilities, ref_probabilities))
        if on_progress:
            on_progress(len(batch))
    if acc.n == 0:
        raise DataError(f"{dataset.root}: none of the {len(dataset)} image files could be decoded")
    return acc


def evaluate(
    runner: Runner,
    dataset: ImageFolder,
    reference: Runner | np.ndarray | None = None,
    batch_size: int = DEFAULT_BATCH,
    on_progress: Callable[[int], None] | None = None,
    on_scores: Callable[[np.ndarray, list[Path]], None] | None = None,
) -> EvalResult:
    """Top-1/top-5 of ``runner`` (if labeled) and, with ``reference``, agreement, KL and cosine.

    ``reference`` is a runner, or the logits a runner produced on this same dataset
    (rows in iteration order), so one reference pass can serve many models.
    ``on_scores`` receives each batch's scores as they are computed, with the batch's image files
    (undecodable files are skipped, so rows and dataset files need not line up otherwise).
    """
    skipped_before = len(dataset.skipped)
    start = time.perf_counter()
    acc = accumulate(runner, dataset, reference, batch_size, on_progress, on_scores)
    return acc.result(len(dataset.skipped) - skipped_before, time.perf_counter() - start, reference is not None)
