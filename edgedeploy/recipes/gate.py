"""The CI gate: check a run's results against the recipe's thresholds and a baseline.

It fails closed. A target that failed to build or measure, a target the recipe names
but the results lack, results of a different model, or a baseline measured on other
data are errors (exit 6), never passes. A threshold that is exceeded is a regression
(exit 1). Only when every check passes is the exit code 0.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from edgedeploy.core.artifacts import atomic_write_text
from edgedeploy.core.errors import EXIT_INCOMPLETE, EXIT_REGRESSION, ConfigError, InputFileError
from edgedeploy.recipes.results import check_finite
from edgedeploy.recipes.schema import Recipe, Thresholds

__all__ = ["Check", "GateReport", "check_results", "write_junit", "DEFAULT_MAX_REGRESSION"]

# Top-1 points a target may lose against its baseline when the recipe sets no max_top1_regression.
DEFAULT_MAX_REGRESSION = 0.3

Status = Literal["pass", "fail", "error", "skip"]


@dataclass(frozen=True)
class Check:
    target: str
    name: str
    status: Status
    value: float | None = None
    limit: float | None = None
    message: str = ""


@dataclass
class GateReport:
    recipe: str
    checks: list[Check]

    @property
    def exit_code(self) -> int:
        statuses = {c.status for c in self.checks}
        if "error" in statuses:
            return EXIT_INCOMPLETE
        return EXIT_REGRESSION if "fail" in statuses else 0

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(c.status == s for c in self.checks) for s in ("pass", "fail", "error", "skip")}
        return {"recipe": self.recipe, "passed": self.passed, "exit_code": self.exit_code, "counts": counts,
                "checks": [asdict(c) for c in self.checks]}


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


def _target_checks(name: str, entry: dict[str, Any], limits: Thresholds,
                   baseline: dict[str, Any] | None) -> list[Check]:
    if entry.get("status") != "ok":
        return [Check(name, "build", "error", message=f"failed at {entry.get('stage', '?')}: {entry.get('error', '?')}")]
    accuracy = entry.get("accuracy", {})
    checks = []
    if limits.max_top1_drop is not None:
        checks.append(_upper(name, "top1_drop", accuracy.get("top1_drop"), limits.max_top1_drop, " pts"))
    if limits.min_agreement is not None:
        checks.append(_lower(name, "agreement", accuracy.get("agreement"), limits.min_agreement, " %"))
    if limits.max_size_mb is not None:
        size = entry.get("size_bytes")
        checks.append(_upper(name, "size", size / 2**20 if size is not None else None, limits.max_size_mb, " MiB"))
    if limits.max_latency_ms is not None:
        latency = entry.get("latency") or {}
        if not latency:
            checks.append(Check(name, "latency_p50", "error", message="no latency in the results"))
        for device, lat in latency.items():
            checks.append(_upper(name, f"latency_p50[{device}]", lat["latency_ms"]["p50"], limits.max_latency_ms, " ms"))
    if baseline is not None:
        limit = limits.max_top1_regression if limits.max_top1_regression is not None else DEFAULT_MAX_REGRESSION
        before = baseline["targets"].get(name)
        if not before or before.get("status") != "ok":
            checks.append(Check(name, "top1_vs_baseline", "skip", limit=limit, message="no baseline for this target"))
        else:
            now, then = accuracy.get("top1"), before["accuracy"].get("top1")
            loss = round(then - now, 4) if now is not None and then is not None else None
            check = _upper(name, "top1_vs_baseline", loss, limit, " pts")
            if loss is not None:
                check = Check(name, check.name, check.status, loss, limit,
                              f"top-1 {now:.2f} vs baseline {then:.2f}: {check.message}")
            checks.append(check)
    return checks


def _same_origin(recipe: Recipe, results: dict[str, Any], baseline: dict[str, Any] | None) -> None:
    model = recipe.spec.model.model_dump()
    if results["recipe"]["model"] != model:
        raise InputFileError(f"the results are for model {results['recipe']['model']}, the recipe describes {model}")
    if baseline is not None:
        if baseline["recipe"]["model"] != model:
            raise InputFileError(f"the baseline is for model {baseline['recipe']['model']}, the recipe describes {model}")
        if baseline["evaluation"]["fingerprint"] != results["evaluation"]["fingerprint"]:
            raise InputFileError("the baseline was measured on different evaluation data (its fingerprint differs); "
                                 "top-1 figures are not comparable")


def check_results(recipe: Recipe, results: dict[str, Any], baseline: dict[str, Any] | None = None,
                  only: list[str] | None = None) -> GateReport:
    """Every check for every recipe target (or ``only`` those), in recipe order."""
    check_finite(results, "results")
    _same_origin(recipe, results, baseline)
    unknown = [n for n in only or [] if n not in recipe.spec.targets]
    if unknown:
        raise ConfigError(f"--targets {', '.join(unknown)}: not in {recipe.path.name} "
                          f"(it has: {', '.join(recipe.spec.targets)})")
    names = [n for n in recipe.spec.targets if not only or n in only]
    # max_top1_regression alone does not count: without a baseline it checks nothing.
    unchecked = [n for n in names
                 if not recipe.thresholds(n).model_dump(exclude_none=True, exclude={"max_top1_regression"})]
    if unchecked:
        raise ConfigError(f"{recipe.path.name}: no thresholds for {', '.join(unchecked)}: "
                          "the gate would pass them unchecked (set thresholds: in the recipe)")
    checks: list[Check] = []
    for name in names:
        entry = results["targets"].get(name)
        if entry is None:
            checks.append(Check(name, "build", "error", message="not in the results (was it run?)"))
            continue
        checks.extend(_target_checks(name, entry, recipe.thresholds(name), baseline))
    if not checks:
        checks.append(Check("(all)", "checks", "error", message="nothing was checked"))
    return GateReport(recipe.name, checks)


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
