"""A sweep's results: the finished-cell store a re-run resumes from, the Pareto fronts, and
``sweep.json`` (schema ``edgedeploy.sweep/1``). Torch- and Ray-free: ``report`` and ``gate`` read a
sweep on a machine with neither.

Layout of a sweep's output folder::

    sweep.json                     every cell (keyed by cell id, entries shaped like results.json's targets)
    cells/<cell id>/cell.json      one finished cell, written the moment it finishes (the resume point)
    cells/<cell id>/predictions.npz  its per-image top-5
    cells/<cell id>/artifacts/     its artifact, manifest and conversion log
    models/<model id>.json/.npz    the float model of one width x resolution, and its predictions
    evidence/<model id>.evidence.npz  per-image evidence of each float model and its cells (gate)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgedeploy.core.artifacts import atomic_write_text
from edgedeploy.core.errors import InputFileError
from edgedeploy.core.hashing import content_digest
from edgedeploy.core.jsonfile import json_text, parse_json
from edgedeploy.core.paths import MAX_JSON_BYTES, read_text
from edgedeploy.recipes.evidence import Predictions
from edgedeploy.recipes.results import DIGEST_KEY, read_versioned_json

__all__ = ["SWEEP_FILE", "SWEEP_SCHEMA", "CellStore", "pareto_front", "fronts", "read_sweep", "is_sweep_results", "write_sweep", "p50",
           "cpu_of"]

SWEEP_FILE = "sweep.json"
SWEEP_SCHEMA = "edgedeploy.sweep/1"
CELL_FILE = "cell.json"
PREDICTIONS_FILE = "predictions.npz"


class CellStore:
    """Finished cells and float models on disk, each written atomically the moment it is done, so an
    interrupted sweep keeps them and a re-run (same key) does not redo them."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)

    def cell_dir(self, cell_id: str) -> Path:
        return self.out_dir / "cells" / cell_id

    @staticmethod
    def _read(path: Path, predictions: Path, key: str) -> tuple[dict[str, Any], Predictions] | None:
        try:
            record = parse_json(path.read_text())
            if record.get("key") != key or record.get("status") != "ok":
                return None
            return record, Predictions.load(predictions)
        except (OSError, ValueError, KeyError):
            return None  # missing, damaged or from other inputs: done again

    def finished_cell(self, cell_id: str, key: str) -> tuple[dict[str, Any], Predictions] | None:
        """A cell finished with ``key`` (same inputs, same code); failed cells are not finished: a
        re-run tries them again."""
        folder = self.cell_dir(cell_id)
        return self._read(folder / CELL_FILE, folder / PREDICTIONS_FILE, key)

    def write_cell(self, cell_id: str, record: dict[str, Any], predictions: Predictions | None) -> None:
        folder = self.cell_dir(cell_id)
        folder.mkdir(parents=True, exist_ok=True)
        if predictions is not None:
            predictions.save(folder / PREDICTIONS_FILE)
        atomic_write_text(folder / CELL_FILE, json_text(record, indent=1) + "\n")

    def finished_model(self, model_id: str, key: str) -> tuple[dict[str, Any], Predictions] | None:
        folder = self.out_dir / "models"
        return self._read(folder / f"{model_id}.json", folder / f"{model_id}.npz", key)

    def write_model(self, model_id: str, record: dict[str, Any], predictions: Predictions) -> None:
        folder = self.out_dir / "models"
        folder.mkdir(parents=True, exist_ok=True)
        predictions.save(folder / f"{model_id}.npz")
        atomic_write_text(folder / f"{model_id}.json", json_text(record, indent=1) + "\n")


def p50(entry: dict[str, Any]) -> float | None:
    return ((entry.get("latency") or {}).get("cpu") or {}).get("latency_ms", {}).get("p50")


def cpu_of(entry: dict[str, Any]) -> str:
    """The CPU a cell was benched on (its latency compares only with cells benched on an equal one)."""
    return (entry.get("host") or {}).get("cpu") or "unknown"


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """The ids whose (cost, metric) no other point beats: none has lower-or-equal cost and higher-or-equal
    metric with one of them strict. Sorted by cost."""
    front = [i for i, (cost, top1) in points.items()
             if not any(c <= cost and t >= top1 and (c < cost or t > top1) for c, t in points.values())]
    return sorted(front, key=lambda i: points[i])


def fronts(cells: dict[str, dict[str, Any]], metric: str = "top1") -> dict[str, Any]:
    """The Pareto fronts of the finished cells: the task's ``metric`` (top-1, mIoU) vs size
    (``<metric>_vs_size``), and vs p50 per bench CPU (``<metric>_vs_p50``; latencies from different CPUs
    are never put on one front)."""
    ok = {i: c for i, c in cells.items() if c.get("status") == "ok" and c["accuracy"].get(metric) is not None}
    by_cpu: dict[str, dict[str, tuple[float, float]]] = {}
    for i, c in ok.items():
        if (latency := p50(c)) is not None:
            by_cpu.setdefault(cpu_of(c), {})[i] = (latency, c["accuracy"][metric])
    return {f"{metric}_vs_size": pareto_front({i: (c["size_bytes"], c["accuracy"][metric]) for i, c in ok.items()}),
            f"{metric}_vs_p50": [{"cpu": cpu, "cells": pareto_front(points)} for cpu, points in by_cpu.items()]}


def read_sweep(path: str | Path) -> dict[str, Any]:
    return read_versioned_json(path, "sweep results file", (SWEEP_SCHEMA,), "cells")


def is_sweep_results(path: str | Path) -> bool:
    """Whether a JSON file is a sweep's results (rather than a recipe run's), without failing."""
    try:
        data = parse_json(read_text(path, "results file", MAX_JSON_BYTES))
    except (InputFileError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("schema") == SWEEP_SCHEMA


def write_sweep(results: dict[str, Any], out_dir: Path) -> Path:
    """Write ``results`` (its content digest added to it, as readers check it) to ``out_dir/sweep.json``."""
    path = Path(out_dir) / SWEEP_FILE
    results[DIGEST_KEY] = content_digest(results, DIGEST_KEY)
    atomic_write_text(path, json_text(results, indent=1) + "\n")
    return path
