"""Per-image evidence of a run (``results.evidence.npz`` beside results.json): for every evaluated image,
keyed by its sha256, the float model's and each target's per-image records (the task's: classification
the label and top-5, segmentation per-class intersection / predicted / labeled pixel counts; and against
the float model the agreeing positions). It lets a later gate pair images: the same image scored
better by one model than by another is what paired statistics count.

The file is found by the results file's name (``X.json`` -> ``X.evidence.npz``), so a baseline kept as
``baselines/mobilenet_v2.json`` keeps its evidence as ``baselines/mobilenet_v2.evidence.npz``.
results.json records its sha256 (``evidence``), so a changed file is refused like a changed artifact.
Torch-free (numpy only): the gate reads it on a machine with no ML stack.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.artifacts import atomic_path
from edgedeploy.core.errors import ArtifactMismatchError, InputFileError
from edgedeploy.core.hashing import sha256_file
from edgedeploy.core.stats import Interval, PairedComparison
from edgedeploy.measure.sharded import ShardResult
from edgedeploy.tasks import Records, Task, get_task

__all__ = ["evidence_path", "Predictions", "Evidence", "write_evidence", "read_evidence"]

_REFERENCE, _TARGET = "reference.", "target."


@dataclass(frozen=True)
class Predictions:
    """One model's evaluation, image by image in evaluation order."""

    images: np.ndarray  # (n,) sha256 hex of each image file
    records: Records

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            np.savez(f, images=self.images, **{_REFERENCE + k: v for k, v in self.records.items()})

    @classmethod
    def of(cls, shard: ShardResult) -> Predictions:
        return cls(shard.images, shard.records)

    @classmethod
    def load(cls, path: Path) -> Predictions:
        with np.load(path, allow_pickle=False) as data:
            return cls(data["images"], {k[len(_REFERENCE):]: data[k] for k in data.files if k.startswith(_REFERENCE)})


@dataclass(frozen=True)
class Evidence:
    """The evidence file's content: the float reference and every target, on the same images."""

    task: str
    images: np.ndarray
    reference: Records
    targets: dict[str, Records] = field(default_factory=dict)

    @classmethod
    def collect(cls, task: str, reference: Predictions, targets: dict[str, Predictions]) -> Evidence:
        for name, preds in targets.items():
            if not np.array_equal(preds.images, reference.images):
                raise InputFileError(f"{name} was evaluated on other images than the float reference")
        return cls(task, reference.images, reference.records, {n: p.records for n, p in targets.items()})

    @property
    def kind(self) -> Task:
        return get_task(self.task)

    def records(self, target: str | None = None) -> Records:
        """A target's (None: the float model's) per-image records."""
        return self.reference if target is None else self.targets[target]

    def has(self, target: str) -> bool:
        return target in self.targets

    def paired(self, target: str, confidence: float, before: Evidence | None = None,
               before_target: str | None = None) -> PairedComparison | None:
        """``target``'s metric against ``before_target`` in ``before`` (default: this run's float model) on
        the same images; None when the images are unlabeled or a side is missing."""
        before = before or self
        if not self.has(target) or (before_target is not None and not before.has(before_target)):
            return None
        return self.kind.paired(before.records(before_target), self.records(target), confidence)

    def agreement(self, target: str, confidence: float) -> Interval | None:
        """``target``'s agreement with the float model, with its interval over images."""
        return self.kind.agreement_interval(self.targets[target], confidence) if self.has(target) else None

    def aligned_to(self, other: Evidence, what: str) -> Evidence:
        """This evidence reordered to ``other``'s image order; InputFileError when the images differ
        (the comparison fails closed: unpaired images cannot be paired)."""
        if self.task != other.task:
            raise InputFileError(f"{what} is {self.task} evidence, not {other.task}: per-image results cannot be paired")
        if len(self.images) != len(other.images) or set(self.images.tolist()) != set(other.images.tolist()):
            missing = len(set(other.images.tolist()) - set(self.images.tolist()))
            raise InputFileError(f"{what} was measured on other images ({len(self.images)} vs {len(other.images)}, "
                                 f"{missing} not in it): per-image results cannot be paired")
        position = {sha: i for i, sha in enumerate(self.images.tolist())}
        order = np.array([position[sha] for sha in other.images.tolist()])
        reordered = self.kind.reorder(self.reference, order)
        if not self.kind.same_labels(reordered, other.reference):
            raise InputFileError(f"{what} labels the same images differently: per-image results cannot be paired")
        return Evidence(self.task, self.images[order], reordered,
                        {n: self.kind.reorder(t, order) for n, t in self.targets.items()})


def evidence_path(results_file: Path) -> Path:
    """Where the evidence of ``results_file`` lies: beside it, named after it."""
    return results_file.with_name(f"{results_file.stem}.evidence.npz")


def write_evidence(evidence: Evidence, results_file: Path) -> dict[str, Any]:
    """Write the evidence beside ``results_file`` (before it); returns the results.json entry for it."""
    arrays: dict[str, np.ndarray] = {"images": evidence.images, "task": np.array(evidence.task)}
    arrays.update({_REFERENCE + k: v for k, v in evidence.reference.items()})
    for name, records in evidence.targets.items():
        arrays.update({f"{_TARGET}{name}.{k}": v for k, v in records.items()})
    path = evidence_path(results_file)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return {"file": path.name, "sha256": sha256_file(path), "images": len(evidence.images),
            "targets": list(evidence.targets)}


def read_evidence(results: dict[str, Any], results_file: Path) -> Evidence | None:
    """The evidence beside ``results_file`` (read as ``results``), checked against the sha256 the results
    recorded; None for results written before evidence existed (schema 1) or copied without it."""
    entry = results.get("evidence")
    if not isinstance(entry, dict):
        return None
    path = evidence_path(results_file)
    if not path.is_file():
        return None
    if sha256_file(path) != entry.get("sha256"):
        raise ArtifactMismatchError(f"{path}: its sha256 differs from the one the results recorded "
                                    "(changed since the run)")
    try:
        with np.load(path, allow_pickle=False) as data:
            reference = {k[len(_REFERENCE):]: data[k] for k in data.files if k.startswith(_REFERENCE)}
            targets: dict[str, Records] = {}
            for key in data.files:
                if key.startswith(_TARGET):
                    # Target names may hold dots (sweep cells: w1.0-r160-onnx); record fields do not.
                    name, _, record = key[len(_TARGET):].rpartition(".")
                    targets.setdefault(name, {})[record] = data[key]
            return Evidence(str(data["task"]), data["images"], reference, targets)
    except (OSError, ValueError, KeyError) as exc:
        raise InputFileError(f"{path}: not an edgedeploy evidence file ({exc.__class__.__name__})") from None
