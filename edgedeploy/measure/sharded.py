"""Sharded evaluation: one image set cut into contiguous shards, each evaluated on its own (another
process, another host), and the shards merged into the figures of the whole set.

A shard keeps its task's metric sums (``tasks.Accumulator``), not percentages, so the merge is exact:
accuracy, mIoU and agreement are counts over the same images in the same order as a single pass, and
``max_abs_diff`` is a max. Only float sums (KL, cosine, mean |diff|) can differ from a single pass, in
their last bits (summation order). Each shard also keeps its per-image records (and the images'
sha256) in order, so the merged records are the single pass's, row for row.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.core.artifacts import atomic_path, atomic_write_text
from edgedeploy.core.io_spec import Outputs
from edgedeploy.core.jsonfile import json_text
from edgedeploy.core.outputs import SCORES_PREFIX, concat_outputs, map_outputs
from edgedeploy.data.datasets import ImageSet, LabeledImage
from edgedeploy.measure.evaluate import DEFAULT_BATCH, EvalResult, accumulate
from edgedeploy.runtimes.base import Runner
from edgedeploy.tasks import Accumulator, Records, get_task

__all__ = ["split_shards", "ShardResult", "evaluate_shard", "merge_shards"]

_RECORD = "record."


def split_shards(dataset: ImageSet, images_per_shard: int) -> list[ImageSet]:
    """``dataset`` in contiguous pieces of at most ``images_per_shard`` files, in order."""
    size = max(1, images_per_shard)
    return [dataset.with_files(dataset.files[i:i + size]) for i in range(0, len(dataset.files), size)]


@dataclass
class ShardResult:
    """One shard's evaluation: its task's metric sums and per-image records, in evaluation order."""

    task: str
    accumulator: Accumulator
    skipped: int
    seconds: float
    images: np.ndarray  # (n,) sha256 hex of each evaluated image
    # The model's outputs, kept for the float reference: every target's shard compares against them.
    scores: Outputs | None = None

    @property
    def records(self) -> Records:
        return self.accumulator.records()

    def save(self, path: Path) -> None:
        """``path`` (.json: the sums) and ``path`` with .npz (the arrays); the .json last, so a
        half-written entry has no .json and is recomputed."""
        arrays = {"images": self.images, **{_RECORD + k: v for k, v in self.records.items()}}
        if isinstance(self.scores, dict):
            arrays.update({SCORES_PREFIX + name: values for name, values in self.scores.items()})
        elif self.scores is not None:
            arrays["scores"] = self.scores
        with atomic_path(path.with_suffix(".npz")) as tmp, tmp.open("wb") as f:
            np.savez(f, **arrays)
        atomic_write_text(path, json_text({"task": self.task, "sums": self.accumulator.sums(),
                                            "skipped": self.skipped, "seconds": self.seconds}))

    @classmethod
    def load(cls, path: Path) -> ShardResult:
        record = json.loads(path.read_text())
        task = record["task"]
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as data:
            records = {k[len(_RECORD):]: data[k] for k in data.files if k.startswith(_RECORD)}
            named = {k[len(SCORES_PREFIX):]: data[k] for k in data.files if k.startswith(SCORES_PREFIX)}
            scores = named or (data["scores"] if "scores" in data.files else None)
            accumulator = get_task(task).accumulator().load(record["sums"], records)
            return cls(task, accumulator, record["skipped"], record["seconds"], data["images"], scores)


def evaluate_shard(runner: Runner, shard: ImageSet, reference_scores: Outputs | None = None,
                   batch_size: int = DEFAULT_BATCH, keep_scores: bool = False) -> ShardResult:
    """``runner`` on one shard, against the reference's outputs on the same shard (rows in order)."""
    paths: list[Path] = []
    scores: list[Outputs] = []

    def collect(batch_scores: Outputs, items: list[LabeledImage]) -> None:
        paths.extend(item.path for item in items)
        if keep_scores:
            scores.append(map_outputs(batch_scores, lambda values: values.astype(np.float32)))

    skipped_before = len(shard.skipped)  # a folder keeps what earlier passes over it skipped
    start = time.perf_counter()
    acc = accumulate(runner, shard, reference_scores, batch_size, on_scores=collect)
    digests = shard.digests()
    return ShardResult(runner.io.task, acc, len(shard.skipped) - skipped_before,
                       round(time.perf_counter() - start, 3), np.array([digests[p] for p in paths]),
                       concat_outputs(scores) if keep_scores else None)


def merge_shards(shards: list[ShardResult], with_reference: bool) -> tuple[EvalResult, ShardResult]:
    """The whole set's figures and its records (shards in order), as one pass would give them.
    ``seconds`` is the sum over shards: compute time, not wall time."""
    total = get_task(shards[0].task).accumulator()
    for shard in shards:
        total.merge(shard.accumulator)
    skipped = sum(s.skipped for s in shards)
    seconds = round(sum(s.seconds for s in shards), 3)
    merged = ShardResult(shards[0].task, total, skipped, seconds, np.concatenate([s.images for s in shards]))
    return total.result(skipped, seconds, with_reference), merged
