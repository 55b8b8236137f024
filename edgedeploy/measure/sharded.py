"""Sharded evaluation: one image set cut into contiguous shards, each evaluated on its own (another
process, another host), and the shards merged into the figures of the whole set.

A shard keeps the metric sums (``MetricAccumulator``), not percentages, so the merge is exact:
top-1, top-5 and agreement are counts over the same images in the same order as a single pass, and
``max_abs_diff`` is a max. Only the float sums (KL, cosine, mean |diff|) can differ from a single
pass, in their last bits (summation order). Each shard also keeps its per-image predictions (image
sha256, label, top-5) in order, so the merged predictions are the single pass's, row for row.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.backends.base import Runner
from edgedeploy.core.artifacts import atomic_path, atomic_write_text
from edgedeploy.data.datasets import ImageFolder
from edgedeploy.measure.evaluate import DEFAULT_BATCH, EvalResult, MetricAccumulator, accumulate, top5_classes

__all__ = ["split_shards", "ShardResult", "evaluate_shard", "merge_shards", "NO_LABEL"]

NO_LABEL = -1


def split_shards(dataset: ImageFolder, images_per_shard: int) -> list[ImageFolder]:
    """``dataset`` in contiguous pieces of at most ``images_per_shard`` files, in order."""
    size = max(1, images_per_shard)
    return [ImageFolder(dataset.root, dataset.files[i:i + size], dataset.class_source)
            for i in range(0, len(dataset.files), size)]


@dataclass
class ShardResult:
    """One shard's evaluation: metric sums and its images' predictions in evaluation order."""

    accumulator: MetricAccumulator
    skipped: int
    seconds: float
    images: np.ndarray  # (n,) sha256 hex of each evaluated image
    labels: np.ndarray  # (n,) int32, NO_LABEL when unlabeled
    top5: np.ndarray  # (n, 5) int32
    # The model's logits, kept for the float reference: every target's shard compares against them.
    scores: np.ndarray | None = None

    def save(self, path: Path) -> None:
        """``path`` (.json: the sums) and ``path`` with .npz (the arrays); the .json last, so a
        half-written entry has no .json and is recomputed."""
        arrays = {"images": self.images, "labels": self.labels, "top5": self.top5}
        if self.scores is not None:
            arrays["scores"] = self.scores
        with atomic_path(path.with_suffix(".npz")) as tmp, tmp.open("wb") as f:
            np.savez(f, **arrays)
        atomic_write_text(path, json.dumps({"sums": vars(self.accumulator), "skipped": self.skipped,
                                            "seconds": self.seconds}))

    @classmethod
    def load(cls, path: Path) -> ShardResult:
        record = json.loads(path.read_text())
        accumulator = MetricAccumulator()
        for name, value in record["sums"].items():
            setattr(accumulator, name, value)
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as data:
            scores = data["scores"] if "scores" in data.files else None
            return cls(accumulator, record["skipped"], record["seconds"], data["images"], data["labels"],
                       data["top5"], scores)


def evaluate_shard(runner: Runner, shard: ImageFolder, reference_scores: np.ndarray | None = None,
                   batch_size: int = DEFAULT_BATCH, keep_scores: bool = False) -> ShardResult:
    """``runner`` on one shard, against the reference's logits on the same shard (rows in order)."""
    top5: list[np.ndarray] = []
    paths: list[Path] = []
    scores: list[np.ndarray] = []

    def collect(batch_scores: np.ndarray, batch_paths: list[Path]) -> None:
        top5.append(top5_classes(batch_scores))
        paths.extend(batch_paths)
        if keep_scores:
            scores.append(batch_scores.astype(np.float32))

    skipped_before = len(shard.skipped)  # a folder keeps what earlier passes over it skipped
    start = time.perf_counter()
    acc = accumulate(runner, shard, reference_scores, batch_size, on_scores=collect)
    digests = shard.digests()
    labels = dict(shard.files)
    return ShardResult(
        acc, len(shard.skipped) - skipped_before, round(time.perf_counter() - start, 3),
        np.array([digests[p] for p in paths]),
        np.array([NO_LABEL if labels[p] is None else labels[p] for p in paths], dtype=np.int32),
        np.concatenate(top5), np.concatenate(scores) if keep_scores else None)


def merge_shards(shards: list[ShardResult], with_reference: bool) -> tuple[EvalResult, ShardResult]:
    """The whole set's figures and its predictions (shards in order), as one pass would give them.
    ``seconds`` is the sum over shards: compute time, not wall time."""
    total = MetricAccumulator()
    for shard in shards:
        total.merge(shard.accumulator)
    skipped = sum(s.skipped for s in shards)
    seconds = round(sum(s.seconds for s in shards), 3)
    merged = ShardResult(total, skipped, seconds, np.concatenate([s.images for s in shards]),
                         np.concatenate([s.labels for s in shards]), np.concatenate([s.top5 for s in shards]))
    return total.result(skipped, seconds, with_reference), merged
