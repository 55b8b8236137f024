"""Two runs side by side (``edgedeploy compare A B``, e.g. main against a pull request): per target,
the change of the task's metric (top-1, mIoU) paired image by image (the task's paired test, bootstrap
interval) and, per device, the p50 ratio
B/A with its bootstrap interval, each with a verdict.

Accuracy is deterministic given the artifacts, so any significant change is reported. Latency of two
runs at different times on a shared CPU drifts by a few percent whatever the code does; a ratio is a
change only when its whole interval lies beyond ``latency_margin``. Latency is not compared at all
between hosts whose int8 instruction-set features differ (int8 kernels differ there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgedeploy.core.errors import InputFileError
from edgedeploy.core.stats import DEFAULT_CONFIDENCE, Interval, PairedComparison, ratio_of_medians
from edgedeploy.recipes.evidence import Evidence
from edgedeploy.recipes.report import results_task
from edgedeploy.recipes.results import int8_features, timed_samples
from edgedeploy.tasks import Task

__all__ = ["Comparison", "TargetComparison", "compare_results", "compare_columns", "DEFAULT_LATENCY_MARGIN"]

# Run-to-run drift of p50 on a shared CPU that is not called a change (measured: docs/commands/compare.md).
DEFAULT_LATENCY_MARGIN = 0.10


def compare_columns(task: Task) -> list[str]:
    return ["target", f"{task.metric_label} A", f"{task.metric_label} B", "drop pts", "interval", "lost/gained", "p",
            "accuracy", "device", "p50 A ms", "p50 B ms", "B/A", "B/A interval", "latency"]
SAME = "no significant change"


@dataclass(frozen=True)
class DeviceComparison:
    device: str
    p50_a: float | None
    p50_b: float | None
    ratio: Interval | None
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "p50_a": self.p50_a, "p50_b": self.p50_b,
                "ratio": self.ratio.to_dict() if self.ratio else None, "verdict": self.verdict}


@dataclass(frozen=True)
class TargetComparison:
    target: str
    # The task's metric (top-1, mIoU) in A and in B.
    metric_a: float | None
    metric_b: float | None
    # The metric lost from A to B, paired on the images (None without evidence on both sides).
    accuracy: PairedComparison | None
    verdict: str
    latency: list[DeviceComparison]

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "metric_a": self.metric_a, "metric_b": self.metric_b,
                "drop": round(self.metric_a - self.metric_b, 4) if self.metric_a is not None and self.metric_b is not None
                else None,
                "paired": self.accuracy.to_dict() if self.accuracy else None, "verdict": self.verdict,
                "latency": [d.to_dict() for d in self.latency]}


@dataclass
class Comparison:
    confidence: float
    latency_margin: float
    targets: list[TargetComparison]
    notes: list[str] = field(default_factory=list)
    task: str = "classification"

    @property
    def changed(self) -> list[str]:
        """Targets with a significant change in accuracy or latency."""
        return [t.target for t in self.targets if t.verdict.startswith("significantly")
                or any(d.verdict in ("slower", "faster") for d in t.latency)]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "confidence": self.confidence, "latency_margin": self.latency_margin,
                "changed": self.changed,
                "targets": [t.to_dict() for t in self.targets], "notes": self.notes}

    def rows(self) -> list[list[Any]]:
        rows = []
        for t in self.targets:
            acc = t.accuracy
            head = [t.target, t.metric_a, t.metric_b, acc.drop.estimate if acc else _delta(t.metric_a, t.metric_b),
                    str(acc.drop) if acc else None, f"{acc.lost}/{acc.gained}" if acc else None,
                    f"{acc.p_value:.3g}" if acc else None, t.verdict]
            for d in t.latency or [DeviceComparison("-", None, None, None, "-")]:
                rows.append(head + [d.device, d.p50_a, d.p50_b, d.ratio.estimate if d.ratio else None,
                                    str(d.ratio) if d.ratio else None, d.verdict])
        return rows


def _delta(a: float | None, b: float | None) -> float | None:
    return round(a - b, 4) if a is not None and b is not None else None


def _accuracy_verdict(paired: PairedComparison | None, confidence: float) -> str:
    if paired is None:
        return "not tested (no per-image evidence)"
    if paired.p_value >= 1 - confidence or paired.lost == paired.gained:
        return SAME
    return "significantly worse" if paired.lost > paired.gained else "significantly better"


def _device(device: str, a: dict[str, Any], b: dict[str, Any], comparable: bool, confidence: float,
            margin: float) -> DeviceComparison:
    p50_a = (a.get("latency") or {}).get(device, {}).get("latency_ms", {}).get("p50")
    p50_b = (b.get("latency") or {}).get(device, {}).get("latency_ms", {}).get("p50")
    samples_a, samples_b = timed_samples(a, device), timed_samples(b, device)
    if not comparable:
        return DeviceComparison(device, p50_a, p50_b, None, "not comparable (hosts differ)")
    if len(samples_a) < 2 or len(samples_b) < 2:
        return DeviceComparison(device, p50_a, p50_b, None, "not tested (no timed runs)")
    ratio = ratio_of_medians(samples_b, samples_a, confidence)
    verdict = "slower" if ratio.low > 1 + margin else "faster" if ratio.high < 1 / (1 + margin) else SAME
    return DeviceComparison(device, p50_a, p50_b, ratio, verdict)


def compare_results(a: dict[str, Any], b: dict[str, Any], evidence_a: Evidence | None, evidence_b: Evidence | None,
                    confidence: float = DEFAULT_CONFIDENCE,
                    latency_margin: float = DEFAULT_LATENCY_MARGIN) -> Comparison:
    """Every target in both runs, in B's order. InputFileError when the runs were evaluated on
    different images (their figures do not pair) or measured different tasks."""
    task = results_task(b)
    if results_task(a).name != task.name:
        raise InputFileError(f"run A measured {results_task(a).name}, run B {task.name}: nothing to compare")
    if a["evaluation"]["fingerprint"] != b["evaluation"]["fingerprint"]:
        raise InputFileError("the two runs were evaluated on different images (their fingerprints differ); "
                             f"{task.metric_label} figures are not comparable")
    notes = []
    if evidence_a is None or evidence_b is None:
        notes.append("one run carries no per-image evidence: accuracy changes are point estimates, not tested")
        evidence_a = evidence_b = None
    else:
        evidence_a = evidence_a.aligned_to(evidence_b, "run A")
    features_a, features_b = int8_features(a.get("host")), int8_features(b.get("host"))
    comparable = features_a is not None and features_a == features_b
    if not comparable:
        notes.append(f"latency not compared: the hosts' int8 features differ or are unknown "
                     f"(A: {features_a or 'unknown'}; B: {features_b or 'unknown'})")
    targets = []
    for name, entry_b in b["targets"].items():
        entry_a = a["targets"].get(name)
        if entry_a is None or entry_a.get("status") != "ok" or entry_b.get("status") != "ok":
            state = "only in B" if entry_a is None else "failed in A or B"
            targets.append(TargetComparison(name, None, None, None, f"not compared ({state})", []))
            continue
        paired = None
        if evidence_a is not None and evidence_b is not None and evidence_a.has(name):
            paired = evidence_b.paired(name, confidence, evidence_a, name)
        devices = [d for d in entry_b.get("latency") or {} if d in (entry_a.get("latency") or {})]
        targets.append(TargetComparison(
            name, entry_a["accuracy"][task.metric], entry_b["accuracy"][task.metric], paired,
            _accuracy_verdict(paired, confidence),
            [_device(d, entry_a, entry_b, comparable, confidence, latency_margin) for d in devices]))
    missing = [n for n in a["targets"] if n not in b["targets"]]
    if missing:
        notes.append(f"only in A (not compared): {', '.join(missing)}")
    return Comparison(confidence, latency_margin, targets, notes, task.name)
