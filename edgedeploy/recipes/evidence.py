"""Per-image evidence of a run (``results.evidence.npz`` beside results.json): for every evaluated image,
keyed by its sha256, the label, the float model's top-5 and each target's top-5. It lets a later gate
pair images: the same image right in one model and wrong in another is what paired statistics count.

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
from edgedeploy.measure.sharded import NO_LABEL, ShardResult

__all__ = ["evidence_path", "NO_LABEL", "Predictions", "Evidence", "write_evidence", "read_evidence"]



@dataclass(frozen=True)
class Predictions:
    """One model's evaluation, image by image in evaluation order."""

    images: np.ndarray  # (n,) sha256 hex of each image file
    labels: np.ndarray  # (n,) int32 class index, NO_LABEL when unlabeled
    top5: np.ndarray  # (n, 5) int32 classes, best first

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            np.savez(f, images=self.images, labels=self.labels, top5=self.top5)

    @classmethod
    def of(cls, shard: ShardResult) -> Predictions:
        return cls(shard.images, shard.labels, shard.top5)

    @classmethod
    def load(cls, path: Path) -> Predictions:
        with np.load(path, allow_pickle=False) as data:
            return cls(data["images"], data["labels"], data["top5"])


@dataclass(frozen=True)
class Evidence:
    """The evidence file's content: the float reference and every target, on the same images."""

    images: np.ndarray
    labels: np.ndarray
    reference: np.ndarray  # (n, 5) the float model's top-5
    targets: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def collect(cls, reference: Predictions, targets: dict[str, Predictions]) -> Evidence:
        for name, preds in targets.items():
            if not np.array_equal(preds.images, reference.images):
                raise InputFileError(f"{name} was evaluated on other images than the float reference")
        return cls(reference.images, reference.labels, reference.top5, {n: p.top5 for n, p in targets.items()})

    @property
    def labeled(self) -> bool:
        return bool(len(self.labels)) and bool((self.labels != NO_LABEL).all())

    def correct(self, target: str | None = None) -> np.ndarray:
        """Per image: the target's (None: the float model's) top-1 is the label."""
        return self._top5(target)[:, 0] == self.labels

    def agrees(self, target: str) -> np.ndarray:
        """Per image: the target's top-1 is the float model's."""
        return self.targets[target][:, 0] == self.reference[:, 0]

    def _top5(self, target: str | None) -> np.ndarray:
        return self.reference if target is None else self.targets[target]

    def has(self, target: str) -> bool:
        return target in self.targets

    def aligned_to(self, other: Evidence, what: str) -> Evidence:
        """This evidence reordered to ``other``'s image order; InputFileError when the images differ
        (the comparison fails closed: unpaired images cannot be paired)."""
        if len(self.images) != len(other.images) or set(self.images.tolist()) != set(other.images.tolist()):
            missing = len(set(other.images.tolist()) - set(self.images.tolist()))
            raise InputFileError(f"{what} was measured on other images ({len(self.images)} vs {len(other.images)}, "
                                 f"{missing} not in it): per-image results cannot be paired")
        position = {sha: i for i, sha in enumerate(self.images.tolist())}
        order = np.array([position[sha] for sha in other.images.tolist()])
        if not np.array_equal(self.labels[order], other.labels):
            raise InputFileError(f"{what} labels the same images differently: per-image results cannot be paired")
        return Evidence(self.images[order], self.labels[order], self.reference[order],
                        {n: t[order] for n, t in self.targets.items()})


def evidence_path(results_file: Path) -> Path:
    """Where the evidence of ``results_file`` lies: beside it, named after it."""
    return results_file.with_name(f"{results_file.stem}.evidence.npz")


def write_evidence(evidence: Evidence, results_file: Path) -> dict[str, Any]:
    """Write the evidence beside ``results_file`` (before it); returns the results.json entry for it."""
    arrays = {"images": evidence.images, "labels": evidence.labels, "reference.top5": evidence.reference}
    for name, top5 in evidence.targets.items():
        arrays[f"target.{name}.top5"] = top5
        arrays[f"target.{name}.agrees"] = evidence.agrees(name)
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
            targets = {key[len("target."):-len(".top5")]: data[key] for key in data.files
                       if key.startswith("target.") and key.endswith(".top5")}
            return Evidence(data["images"], data["labels"], data["reference.top5"], targets)
    except (OSError, ValueError, KeyError) as exc:
        raise InputFileError(f"{path}: not an edgedeploy evidence file ({exc.__class__.__name__})") from None
