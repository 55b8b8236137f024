"""The gate on a sweep: every cell checked against the thresholds its target has in the sweep file,
with the recipe gate's checks (edgedeploy.recipes.gate) and its fail-closed rules: a cell that
failed or is missing is an error, never a pass. Accuracy checks are paired image by image against
the float model of the cell's width and resolution (the sweep's evidence files); a latency ratio
compares a cell with the float target of its runtime at the same width and resolution, benched on
the same CPU."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from edgedeploy.core.errors import ConfigError, InputFileError
from edgedeploy.exporter.targets import float_counterpart
from edgedeploy.recipes.evidence import Evidence, read_evidence
from edgedeploy.recipes.gate import NO_EVIDENCE, Check, GateReport, target_checks, unchecked_targets
from edgedeploy.sweep.results import cpu_of
from edgedeploy.sweep.schema import Cell, Sweep

__all__ = ["check_sweep", "read_sweep_evidence"]


def read_sweep_evidence(results: dict[str, Any], sweep_file: Path) -> dict[str, Evidence]:
    """Each float model's evidence beside the sweep results, checked against its recorded sha256."""
    found = {}
    for model_id, entry in (results.get("evidence") or {}).items():
        evidence = read_evidence({"evidence": entry}, Path(sweep_file).parent / "evidence" / f"{model_id}.json")
        if evidence is not None:
            found[model_id] = evidence
    return found


def _view(cell: Cell, entry: dict[str, Any], cells: dict[str, Any]) -> dict[str, Any]:
    """The cell as a one-run results dict (target name -> entry), with the float target of its runtime
    at its width and resolution when that cell was benched on the same CPU."""
    targets = {cell.target: entry}
    counterpart = float_counterpart(cell.target)
    other = cells.get(Cell(cell.width, cell.resolution, counterpart, None).id)
    if counterpart != cell.target and other is not None and cpu_of(other) == cpu_of(entry):
        targets[counterpart] = other
    return {"targets": targets}


def check_sweep(sweep: Sweep, results: dict[str, Any], evidence: dict[str, Evidence]) -> GateReport:
    """Every check for every cell of ``sweep`` in ``results`` (sweep.json), in matrix order."""
    model = sweep.spec.model.model_dump(exclude_none=True)
    if results["sweep"]["model"] != model:
        raise InputFileError(f"the sweep results are for model {results['sweep']['model']}, "
                             f"{sweep.path.name} describes {model}")
    unchecked = [c.id for c in sweep.cells if unchecked_targets(sweep.recipe(c), [c.target])]
    if unchecked:
        raise ConfigError(f"{sweep.path.name}: no thresholds for {', '.join(unchecked)}: the gate would pass them "
                          "unchecked (set thresholds: in the sweep file)")
    notes = []
    missing = sorted({c.model_id for c in sweep.cells} - set(evidence))
    if missing:
        notes.append(NO_EVIDENCE.format(what=f"sweep results of {', '.join(missing)}",
                                        checks="their accuracy checks are"))
    checks: list[Check] = []
    for cell in sweep.cells:
        entry = results["cells"].get(cell.id)
        if entry is None:
            checks.append(Check(cell.id, "build", "error", message="not in the sweep results (was it run?)"))
            continue
        found = evidence.get(cell.model_id)
        cell_evidence = (Evidence(found.task, found.images, found.reference, {cell.target: found.targets[cell.id]})
                         if found is not None and found.has(cell.id) else None)
        recipe = sweep.recipe(cell)
        checks += [replace(check, target=cell.id) for check in
                   target_checks(cell.target, _view(cell, entry, results["cells"]),
                                 recipe.thresholds(cell.target), None, cell_evidence, None, recipe.task)]
    return GateReport(sweep.name, checks, notes)
