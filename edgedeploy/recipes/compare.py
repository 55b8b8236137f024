"""Two runs side by side (``edgedeploy compare A B``, e.g. main against a pull request): per target,
the top-1 change paired image by image (McNemar, bootstrap interval) and, per device, the p50 ratio
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
from edgedeploy.measure.stats import DEFAULT_CONFIDENCE, Interval, PairedAccuracy, paired_accuracy, ratio_of_medians
from edgedeploy.recipes.evidence import Evidence
from edgedeploy.recipes.results import int8_features, timed_samples

__all__ = ["Comparison", "TargetComparison", "compare_results", "COMPARE_COLUMNS", "DEFAULT_LATENCY_MARGIN"]

# Run-to-run drift of p50 on a shared CPU that is not called a change (measured: README, compare).
DEFAULT_LATENCY_MARGIN = 0.10
COMPARE_COLUMNS = ["target", "top-1 A", "top-1 B", "drop pts", "interval", "lost/gained", "p", "accuracy",
                   "device", "p50 A ms", "p50 B ms", "B/A", "B/A interval", "latency"]
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
    top1_a: float | None
    top1_b: float | None
    # Top-1 lost from A to B, paired on the images (None without evidence on both sides).
    accuracy: PairedAccuracy | None
    verdict: str
    latency: list[DeviceComparison]

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "top1_a": self.top1_a, "top1_b": self.top1_b,
                "drop": round(self.top1_a - self.top1_b, 4) if self.top1_a is not None and self.top1_b is not None
                else None,
                "paired": self.accuracy.to_dict() if self.accuracy else None, "verdict": self.verdict,
                "latency": [d.to_dict() for d in self.latency]}


@dataclass
class Comparison:
    confidence: float
    latency_margin: float
    targets: list[TargetComparison]
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> list[str]:
        """Targets with a significant change in accuracy or latency."""
        return [t.target for t in self.targets if t.verdict.startswith("significantly")
                or any(d.verdict in ("slower", "faster") for d in t.latency)]

    def to_dict(self) -> dict[str, Any]:
        return {"confidence": self.confidence, "latency_margin": self.latency_margin, "changed": self.changed,
                "targets": [t.to_dict() for t in self.targets], "notes": self.notes}

    def rows(self) -> list[list[Any]]:
        rows = []
        for t in self.targets:
            acc = t.accuracy
            head = [t.target, t.top1_a, t.top1_b, acc.drop.estimate if acc else _delta(t.top1_a, t.top1_b),
                    str(acc.drop) if acc else None, f"{acc.lost}/{acc.gained}" if acc else None,
                    f"{acc.p_value:.3g}" if acc else None, t.verdict]
            for d in t.latency or [DeviceComparison("-", None, None, None, "-")]:
                rows.append(head + [d.device, d.p50_a, d.p50_b, d.ratio.estimate if d.ratio else None,
                                    str(d.ratio) if d.ratio else None, d.verdict])
        return rows


def _delta(a: float | None, b: float | None) -> float | None:
    return round(a - b, 4) if a is not None and b is not None else None


def _accuracy_verdict(paired: PairedAccuracy | None, confidence: float) -> str:
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
    different images (their top-1 figures do not pair)."""
    if a["evaluation"]["fingerprint"] != b["evaluation"]["fingerprint"]:
        raise InputFileError("the two runs were evaluated on different images (their fingerprints differ); "
                             "top-1 figures are not comparable")
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
        if evidence_a is not None and evidence_b is not None and evidence_a.has(name) and evidence_b.has(name):
            paired = paired_accuracy(evidence_a.correct(name), evidence_b.correct(name), confidence)
        devices = [d for d in entry_b.get("latency") or {} if d in (entry_a.get("latency") or {})]
        targets.append(TargetComparison(
            name, entry_a["accuracy"]["top1"], entry_b["accuracy"]["top1"], paired,
            _accuracy_verdict(paired, confidence),
            [_device(d, entry_a, entry_b, comparable, confidence, latency_margin) for d in devices]))
    missing = [n for n in a["targets"] if n not in b["targets"]]
    if missing:
        notes.append(f"only in A (not compared): {', '.join(missing)}")
    return Comparison(confidence, latency_margin, targets, notes)
