"""The CI gate: check a run's results against the recipe's thresholds and a baseline.

The checks follow the model's task (edgedeploy.tasks): its metric (top-1, mIoU) is what
``max_<metric>_drop`` and ``max_<metric>_regression`` limit, its agreement (top-1 per image, class
per pixel) what ``min_agreement`` limits. With per-image evidence (results schema 2), metric checks
are paired: the same images in the float model (or the baseline) and the target, a bootstrap interval
of the drop over images, and the task's paired test (McNemar on per-image correctness, Wilcoxon on
per-image IoU); agreement gets a bootstrap interval over images. A recipe's ``confidence`` picks the
semantics: unset, a limit is checked on the point estimate (the interval is shown); set, a metric
check fails only on a significant loss (the one-sided test) whose upper bound exceeds the limit, an
agreement check only when the whole interval is below its limit, and a latency check only when the
whole interval is above the limit. Results without evidence gate on point estimates, with a note
saying so.

It fails closed. A target that failed to build or measure, a target the recipe names
but the results lack, results of a different model, or a baseline measured on other
data are errors (exit 6), never passes. A threshold that is exceeded is a regression
(exit 1). Only when every check passes is the exit code 0.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from edgedeploy.core.artifacts import atomic_write_text
from edgedeploy.core.errors import EXIT_INCOMPLETE, EXIT_REGRESSION, ConfigError, InputFileError
from edgedeploy.core.stats import DEFAULT_CONFIDENCE, Interval, PairedComparison, median_interval
from edgedeploy.exporter.targets import float_counterpart
from edgedeploy.recipes.evidence import Evidence
from edgedeploy.recipes.results import check_finite, latency_ratio, timed_samples
from edgedeploy.recipes.schema import Recipe, Thresholds
from edgedeploy.tasks import Task

__all__ = ["Check", "GateReport", "check_results", "write_junit", "DEFAULT_MAX_REGRESSION", "NO_EVIDENCE",
           "GATE_COLUMNS", "target_checks", "unchecked_targets"]

# Metric points a target may lose against its baseline when the recipe sets no max_<metric>_regression.
DEFAULT_MAX_REGRESSION = 0.3

Status = Literal["pass", "fail", "error", "skip"]
GATE_COLUMNS = ["target", "check", "value", "limit", "interval", "lost/gained", "p (loss)", "verdict", "detail"]
NO_EVIDENCE = ("the {what} carry no per-image evidence (written before edgedeploy.results/2, or copied without "
               "their .evidence.npz): {checks} gated on point estimates")


@dataclass(frozen=True)
class Check:
    target: str
    name: str
    status: Status
    value: float | None = None
    limit: float | None = None
    message: str = ""
    # The confidence interval of ``value``, where the evidence gives one.
    interval: tuple[float, float] | None = None
    # Accuracy with evidence: (images lost, images gained) and McNemar's exact one-sided p-value for a loss.
    discordant: tuple[int, int] | None = None
    p_value: float | None = None


@dataclass
class GateReport:
    recipe: str
    checks: list[Check]
    # What the verdicts rest on, when it is less than the recipe asks (e.g. no per-image evidence).
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        statuses = {c.status for c in self.checks}
        if "error" in statuses:
            return EXIT_INCOMPLETE
        return EXIT_REGRESSION if "fail" in statuses else 0

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def rows(self) -> list[list[Any]]:
        """The verdicts as a table (GATE_COLUMNS)."""
        return [[c.target, c.name, c.value, c.limit,
                 f"[{c.interval[0]:.2f}, {c.interval[1]:.2f}]" if c.interval else None,
                 f"{c.discordant[0]}/{c.discordant[1]}" if c.discordant else None,
                 f"{c.p_value:.3g}" if c.p_value is not None else None, c.status.upper(), c.message]
                for c in self.checks]

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(c.status == s for c in self.checks) for s in ("pass", "fail", "error", "skip")}
        return {"recipe": self.recipe, "passed": self.passed, "exit_code": self.exit_code, "counts": counts,
                "checks": [asdict(c) for c in self.checks], "notes": self.notes}


def _upper(target: str, name: str, value: float | None, limit: float, unit: str) -> Check:
    if value is None:
        return Check(target, name, "error", None, limit, "no measurement in the results")
    ok = value <= limit
    return Check(target, name, "pass" if ok else "fail", value, limit,
                 f"{value:.2f}{unit} {'<=' if ok else '>'} {limit:.2f}{unit}")


def _lower(target: str, name: str, value: float | None, limit: float, unit: str) -> Check:
    if value is None:
        return Check(target, name, "error", None, limit, "no measurement in the results")
    ok = value >= limit
    return Check(target, name, "pass" if ok else "fail", value, limit,
                 f"{value:.2f}{unit} {'>=' if ok else '<'} {limit:.2f}{unit}")


def _accuracy(target: str, name: str, point: float | None, limit: float, confidence: float | None,
              paired: PairedComparison | None) -> Check:
    """A metric loss (points) against ``limit``: on the point estimate, or with ``confidence`` on the
    evidence (a significant loss whose upper bound exceeds the limit fails; noise does not)."""
    if paired is None:
        return _upper(target, name, point, limit, " pts")
    drop = paired.drop
    stats = dict(value=drop.estimate, limit=limit, interval=(drop.low, drop.high),
                 discordant=(paired.lost, paired.gained), p_value=paired.p_loss)
    if confidence is None:
        ok = drop.estimate <= limit
        return Check(target, name, "pass" if ok else "fail", message=(
            f"{drop.estimate:.2f} pts {'<=' if ok else '>'} {limit:.2f} pts; {paired.describe()}"), **stats)
    alpha = 1 - confidence
    if drop.high <= limit:
        ok, why = True, f"upper bound {drop.high:.2f} pts <= {limit:.2f} pts"
    elif not paired.significant_loss:
        ok, why = True, (f"upper bound {drop.high:.2f} pts > {limit:.2f} pts, but no significant loss "
                         f"(one-sided {paired.test} p={paired.p_loss:.3g} >= {alpha:.3g})")
    else:
        ok, why = False, (f"significant loss (one-sided {paired.test} p={paired.p_loss:.3g} < {alpha:.3g}) and "
                          f"upper bound {drop.high:.2f} pts > {limit:.2f} pts")
    return Check(target, name, "pass" if ok else "fail",
                 message=f"{why}; drop {drop.estimate:.2f} pts, {paired.describe()}", **stats)


def _agreement(target: str, point: float | None, limit: float, interval: Interval | None,
               confidence: float | None) -> Check:
    """Agreement with the float model against its lower ``limit``: on the point estimate (the interval shown),
    or with ``confidence`` failing only when the whole interval is below the limit."""
    if interval is None:
        return _lower(target, "agreement", point, limit, " %")
    value = interval.high if confidence is not None else interval.estimate
    ok = value >= limit
    basis = "upper bound " if confidence is not None else ""
    return Check(target, "agreement", "pass" if ok else "fail", interval.estimate, limit,
                 f"{basis}{value:.2f} % {'>=' if ok else '<'} {limit:.2f} %; {interval.estimate:.2f} %, "
                 f"{interval.confidence:.0%} CI {interval}", interval=(interval.low, interval.high))


def _on_interval(target: str, name: str, interval: Interval, limit: float, unit: str, point_only: bool) -> Check:
    """An upper limit on a latency figure: on its point estimate, or (``point_only`` False) failing only
    when the whole interval is above the limit (a noisy CPU does not flip the verdict)."""
    value = interval.low if not point_only else interval.estimate
    ok = value <= limit
    basis = "" if point_only else "lower bound "
    return Check(target, name, "pass" if ok else "fail", interval.estimate, limit,
                 f"{basis}{value:.2f}{unit} {'<=' if ok else '>'} {limit:.2f}{unit}; "
                 f"{interval.estimate:.2f}{unit}, {interval.confidence:.0%} CI {interval}",
                 interval=(interval.low, interval.high))


def _latency_checks(name: str, results: dict[str, Any], limits: Thresholds) -> list[Check]:
    entry = results["targets"][name]
    latency = entry.get("latency") or {}
    confidence = limits.confidence
    checks = []
    if (limits.max_latency_ms is not None or limits.max_latency_ratio is not None) and not latency:
        checks.append(Check(name, "latency_p50", "error", message="no latency in the results"))
    for device, lat in latency.items():
        if limits.max_latency_ms is not None:
            samples = timed_samples(entry, device)
            if len(samples) >= 2:
                interval = median_interval(samples, confidence or DEFAULT_CONFIDENCE)
                checks.append(_on_interval(name, f"latency_p50[{device}]", interval, limits.max_latency_ms, " ms",
                                           point_only=confidence is None))
            else:
                checks.append(_upper(name, f"latency_p50[{device}]", lat["latency_ms"]["p50"],
                                     limits.max_latency_ms, " ms"))
        if limits.max_latency_ratio is not None:
            check = f"latency_ratio[{device}]"
            counterpart = float_counterpart(name)
            if name == counterpart:
                checks.append(Check(name, check, "skip", limit=limits.max_latency_ratio,
                                    message="the float target of its runtime: the ratio's denominator"))
                continue
            ratio = latency_ratio(results["targets"], name, device, confidence or DEFAULT_CONFIDENCE)
            if ratio is None:
                checks.append(Check(name, check, "error", limit=limits.max_latency_ratio,
                                    message=f"no timed runs of {name} and {counterpart} on {device} in the results"))
            else:
                checks.append(_on_interval(name, check, ratio, limits.max_latency_ratio, "x",
                                           point_only=confidence is None))
    return checks


def _paired(before: Evidence | None, before_target: str | None, now: Evidence | None, target: str,
            confidence: float | None) -> PairedComparison | None:
    """``target`` in ``now`` against ``before_target`` in ``before`` (None: the float model), paired."""
    if before is None or now is None:
        return None
    return now.paired(target, confidence or DEFAULT_CONFIDENCE, before, before_target)


def target_checks(name: str, results: dict[str, Any], limits: Thresholds, baseline: dict[str, Any] | None,
                  evidence: Evidence | None, baseline_evidence: Evidence | None, task: Task) -> list[Check]:
    entry = results["targets"][name]
    if entry.get("status") != "ok":
        return [Check(name, "build", "error", message=f"failed at {entry.get('stage', '?')}: {entry.get('error', '?')}")]
    accuracy = entry.get("accuracy", {})
    metric = task.metric
    checks = []
    drop_limit = limits.drop_limit(task)
    if drop_limit is not None:
        checks.append(_accuracy(name, f"{metric}_drop", accuracy.get(f"{metric}_drop"), drop_limit, limits.confidence,
                                _paired(evidence, None, evidence, name, limits.confidence)))
    if limits.min_agreement is not None:
        interval = evidence.agreement(name, limits.confidence or DEFAULT_CONFIDENCE) if evidence else None
        checks.append(_agreement(name, accuracy.get("agreement"), limits.min_agreement, interval, limits.confidence))
    if limits.max_size_mb is not None:
        size = entry.get("size_bytes")
        checks.append(_upper(name, "size", size / 2**20 if size is not None else None, limits.max_size_mb, " MiB"))
    checks.extend(_latency_checks(name, results, limits))
    if baseline is not None:
        regression = limits.regression_limit(task)
        limit = regression if regression is not None else DEFAULT_MAX_REGRESSION
        check_name = f"{metric}_vs_baseline"
        before = baseline["targets"].get(name)
        if not before or before.get("status") != "ok":
            checks.append(Check(name, check_name, "skip", limit=limit, message="no baseline for this target"))
        else:
            now, then = accuracy.get(metric), before["accuracy"].get(metric)
            loss = round(then - now, 4) if now is not None and then is not None else None
            check = _accuracy(name, check_name, loss, limit, limits.confidence,
                              _paired(baseline_evidence, name, evidence, name, limits.confidence))
            if loss is not None:
                check = replace(check, message=f"{task.metric_label} {now:.2f} vs baseline {then:.2f}: {check.message}")
            checks.append(check)
    return checks


def _same_origin(recipe: Recipe, results: dict[str, Any], baseline: dict[str, Any] | None) -> None:
    model = recipe.model_identity
    if results["recipe"]["model"] != model:
        raise InputFileError(f"the results are for model {results['recipe']['model']}, the recipe describes {model}")
    if baseline is not None:
        if baseline["recipe"]["model"] != model:
            raise InputFileError(f"the baseline is for model {baseline['recipe']['model']}, the recipe describes {model}")
        if baseline["evaluation"]["fingerprint"] != results["evaluation"]["fingerprint"]:
            raise InputFileError("the baseline was measured on different evaluation data (its fingerprint differs); "
                                 "top-1 figures are not comparable")


def unchecked_targets(recipe: Recipe, names: list[str]) -> list[str]:
    """The targets among ``names`` the recipe sets no threshold for (the gate refuses to pass them unchecked)."""
    # A regression limit alone does not count: without a baseline it checks nothing.
    return [n for n in names if not recipe.thresholds(n).checked()]


def check_results(recipe: Recipe, results: dict[str, Any], baseline: dict[str, Any] | None = None,
                  only: list[str] | None = None, evidence: Evidence | None = None,
                  baseline_evidence: Evidence | None = None) -> GateReport:
    """Every check for every recipe target (or ``only`` those), in recipe order. ``evidence`` and
    ``baseline_evidence``: the per-image evidence beside the results and the baseline, if any."""
    check_finite(results, "results")
    _same_origin(recipe, results, baseline)
    notes = []
    if evidence is None:
        notes.append(NO_EVIDENCE.format(what="results", checks="accuracy checks are"))
    if baseline is not None and baseline_evidence is None:
        notes.append(NO_EVIDENCE.format(what="baseline results", checks="top1_vs_baseline is"))
    if evidence is not None and baseline_evidence is not None:
        # Fails closed: a baseline on other images cannot be paired with these results.
        baseline_evidence = baseline_evidence.aligned_to(evidence, "the baseline")
    unknown = [n for n in only or [] if n not in recipe.spec.targets]
    if unknown:
        raise ConfigError(f"--targets {', '.join(unknown)}: not in {recipe.path.name} "
                          f"(it has: {', '.join(recipe.spec.targets)})")
    names = [n for n in recipe.spec.targets if not only or n in only]
    unchecked = unchecked_targets(recipe, names)
    if unchecked:
        raise ConfigError(f"{recipe.path.name}: no thresholds for {', '.join(unchecked)}: "
                          "the gate would pass them unchecked (set thresholds: in the recipe)")
    checks: list[Check] = []
    for name in names:
        entry = results["targets"].get(name)
        if entry is None:
            checks.append(Check(name, "build", "error", message="not in the results (was it run?)"))
            continue
        checks.extend(target_checks(name, results, recipe.thresholds(name), baseline, evidence, baseline_evidence,
                                    recipe.task))
    if not checks:
        checks.append(Check("(all)", "checks", "error", message="nothing was checked"))
    return GateReport(recipe.name, checks, notes)


def write_junit(report: GateReport, path: str | Path) -> None:
    """JUnit XML: one test case per target and check, so any CI shows which failed and by how much."""
    counts = report.to_dict()["counts"]
    suite = ET.Element("testsuite", name=f"edgedeploy gate {report.recipe}", tests=str(len(report.checks)),
                       failures=str(counts["fail"]), errors=str(counts["error"]), skipped=str(counts["skip"]))
    for check in report.checks:
        case = ET.SubElement(suite, "testcase", classname=f"edgedeploy.{report.recipe}.{check.target}", name=check.name)
        if check.status == "fail":
            ET.SubElement(case, "failure", message=check.message, type="regression").text = check.message
        elif check.status == "error":
            ET.SubElement(case, "error", message=check.message, type="incomplete").text = check.message
        elif check.status == "skip":
            ET.SubElement(case, "skipped", message=check.message)
        else:
            ET.SubElement(case, "system-out").text = check.message
    suites = ET.Element("testsuites", name="edgedeploy gate")
    suites.append(suite)
    ET.indent(suites)
    atomic_write_text(path, ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n")
