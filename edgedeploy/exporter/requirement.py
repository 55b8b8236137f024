"""``--max-drop`` with ``--val`` on any quantized target: the user's accuracy requirement, measured on their
labeled data after the artifact passed its parity checks.

The artifact and the float model are evaluated on the same images; the drop of the task's metric (top-1,
mIoU) is the paired difference with its bootstrap interval. The export fails (exit 4, nothing written) when
the measured drop exceeds the budget; ``edgedeploy tune`` searches calibration, PTQ methods and float layers
for a build that meets it (and, being a search, holds the interval's upper end to the budget instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedeploy.core.errors import DataError, ValidationError
from edgedeploy.measure.evaluate import accumulate
from edgedeploy.runtimes.base import Runner
from edgedeploy.tasks import get_task

__all__ = ["AccuracyRequirement", "check_requirement"]


@dataclass(frozen=True)
class AccuracyRequirement:
    metric: str
    max_drop: float
    val: str
    images: int
    float_value: float
    artifact_value: float
    drop: dict[str, Any]

    @property
    def met(self) -> bool:
        return self.drop["drop"]["estimate"] <= self.max_drop

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "max_drop": self.max_drop, "val": self.val, "images": self.images,
                "float": self.float_value, "artifact": self.artifact_value, "paired": self.drop, "met": self.met}

    def enforce(self, artifact: str, target: str) -> None:
        if not self.met:
            d = self.drop["drop"]
            raise ValidationError(
                f"{artifact}: accuracy requirement not met: {self.metric} drop {d['estimate']:.2f} points (95% CI "
                f"[{d['low']:.2f}, {d['high']:.2f}]) > --max-drop {self.max_drop} on {self.images} images of "
                f"{self.val}; `edgedeploy tune --target {target} --max-drop {self.max_drop} --val {self.val}` "
                "searches calibration, PTQ methods and float layers for a build that meets it")


def check_requirement(candidate: Runner, reference: Runner, val_dir: Path, max_drop: float) -> AccuracyRequirement:
    """The candidate's drop against ``reference`` on the labeled images in ``val_dir``."""
    task = get_task(reference.io.task)
    dataset = task.open_dataset(val_dir)
    ref = accumulate(reference, dataset)
    cand = accumulate(candidate, dataset)
    paired = task.paired(ref.records(), cand.records(), 0.95)
    if paired is None:
        raise DataError(f"{val_dir}: --max-drop needs labeled data ({task.describe_layout()}, with labels)")
    metric = task.metric
    return AccuracyRequirement(metric, max_drop, str(val_dir), ref.n, float(ref.metrics(False)[metric]),
                               float(cand.metrics(False)[metric]), paired.to_dict())
