"""Run a sweep: every cell's build, sharded evaluation and bench as Ray tasks, each cell written to
the store the moment it finishes, then ``sweep.json`` with the fronts.

Per width x resolution the float model is evaluated once, shard by shard; each cell's shards wait on
its build and on the float model's shard (Ray passes the logits through its object store), and its
bench waits on its build. Cells finished by an earlier run with the same key are not redone: the
key covers the build (its inputs, tool versions and edgedeploy's code) and the evaluation data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.cache import content_key
from edgedeploy.core.manifest import created_utc, tool_versions
from edgedeploy.core.stats import DEFAULT_CONFIDENCE
from edgedeploy.exporter.build_cache import build_key, conversion_packages
from edgedeploy.measure.sharded import merge_shards, split_shards
from edgedeploy.recipes.evidence import Evidence, Predictions, write_evidence
from edgedeploy.recipes.run import failure_entry, metric_drop, reference_key
from edgedeploy.sweep.jobs import is_failure
from edgedeploy.sweep.ray_session import RETRIES, RaySession, ray_session
from edgedeploy.sweep.results import SWEEP_SCHEMA, CellStore, fronts, write_sweep
from edgedeploy.sweep.schema import Cell, Sweep

__all__ = ["run_sweep", "CellDone"]

# Tasks run one thread each: a worker is one core (see ray_session).
TASK_THREADS = 1


@dataclass(frozen=True)
class CellDone:
    """Progress: one cell finished (``resumed``: by an earlier run)."""

    cell: str
    status: str
    resumed: bool
    done: int
    total: int


class _Driver:
    """One sweep run: what is submitted, what has come back, and the records written."""

    def __init__(self, sweep: Sweep, out_dir: Path, force: bool, on_cell: Callable[[CellDone], None] | None):
        self.sweep, self.force, self.on_cell = sweep, force, on_cell
        self.store = CellStore(out_dir)
        first = sweep.recipe(sweep.cells[0])
        self.task = first.task
        self.dataset = first.open_evaluation_data()
        self.data_key = self.dataset.fingerprint()
        self.shards = split_shards(self.dataset, sweep.spec.sweep.shard_images)
        self.cells: dict[str, dict[str, Any]] = {}
        self.predictions: dict[str, Predictions] = {}
        self.models: dict[str, dict[str, Any]] = {}
        self.model_predictions: dict[str, Predictions] = {}
        self.done = 0
        self.keys: dict[str, str] = {}

    def cell_key(self, cell: Cell) -> str:
        recipe = self.sweep.recipe(cell)
        request = recipe.export_request(cell.target, self.store.cell_dir(cell.id), TASK_THREADS)
        return content_key("cell", build_key(request), self.data_key, recipe.spec.bench.model_dump())

    def model_key(self, model_id: str) -> str:
        return reference_key(self.sweep.reference_recipe(model_id), self.data_key)

    def _finish(self, cell: Cell, record: dict[str, Any], predictions: Predictions | None, resumed: bool) -> None:
        self.cells[cell.id] = record
        if predictions is not None:
            self.predictions[cell.id] = predictions
        if not resumed:
            self.store.write_cell(cell.id, record, predictions)
        self.done += 1
        if self.on_cell:
            self.on_cell(CellDone(cell.id, record["status"], resumed, self.done, len(self.sweep.cells)))

    def resume(self) -> list[Cell]:
        """Take the finished cells and models from the store; the cells left to run."""
        todo = []
        for model_id in self.sweep.model_ids:
            if not self.force and (found := self.store.finished_model(model_id, self.model_key(model_id))):
                self.models[model_id], self.model_predictions[model_id] = found
        for cell in self.sweep.cells:
            key = self.cell_key(cell)
            found = None if self.force else self.store.finished_cell(cell.id, key)
            if found and cell.model_id in self.models:
                self._finish(cell, {**found[0], "resumed": True}, found[1], resumed=True)
            else:
                todo.append((cell, key))
        self.keys = {c.id: k for c, k in todo}
        return [c for c, _ in todo]

    def run(self, session: RaySession, todo: list[Cell]) -> None:
        ray, remote = session.ray, session.remote
        batch = self.sweep.spec.evaluation.batch_size
        needed = list(dict.fromkeys([c.model_id for c in todo]))
        references = {m: self.sweep.reference_recipe(m) for m in needed}
        fingerprints = [shard.fingerprint() for shard in self.shards]
        ref_keys = {m: [reference_key(recipe, f) for f in fingerprints] for m, recipe in references.items()}
        ref_refs = {m: [remote["reference_shard"].remote(recipe, shard, key, TASK_THREADS, batch, self.force)
                        for shard, key in zip(self.shards, ref_keys[m])] for m, recipe in references.items()}
        parts: dict[str, dict[str, Any]] = {}
        owner: dict[Any, str] = {}
        for cell in todo:
            recipe, cell_dir = self.sweep.recipe(cell), self.store.cell_dir(cell.id)
            built = remote["build"].remote(recipe, cell.target, cell_dir, TASK_THREADS, self.force)
            shards = [remote["target_shard"].remote(built, ref, key, shard, cell_dir, TASK_THREADS, batch, self.force)
                      for shard, ref, key in zip(self.shards, ref_refs[cell.model_id], ref_keys[cell.model_id])]
            bench = remote["bench"].options(**session.bench_options()).remote(built, recipe, cell_dir)
            parts[cell.id] = {"cell": cell, "build": built, "shards": shards, "bench": bench}
            for ref in [built, *shards, bench]:
                owner[ref] = cell.id
        remaining = {cell_id: len(p["shards"]) + 2 for cell_id, p in parts.items()}
        waiting = list(owner)
        # Interrupted (Ctrl-C, SIGTERM), this raises out to ray_session, whose shutdown ends the job and with it
        # every job it still owns; finished cells are already stored. (Cancelling each task first raced with
        # jobs completing and crashed Ray's core worker: "Tried to complete task that was not pending".)
        while waiting:
            ready, waiting = ray.wait(waiting, num_returns=1)
            cell_id = owner[ready[0]]
            remaining[cell_id] -= 1
            if remaining[cell_id] == 0:
                part = parts.pop(cell_id)
                if part["cell"].model_id not in self.models:
                    self._model(part["cell"].model_id, [self._get(ray, r) for r in ref_refs[part["cell"].model_id]])
                self._assemble(ray, part)

    @staticmethod
    def _get(ray: Any, ref: Any) -> Any:
        """A job's value; a job Ray gave up on (its worker died RETRIES + 1 times) as a failure."""
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:
            error = failure_entry("worker", exc)
            error["error"] = (f"its Ray worker died {RETRIES + 1} times ({exc.__class__.__name__})"
                              if isinstance(exc, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError))
                              else error["error"])
            return error

    def _model(self, model_id: str, shards: list[Any]) -> None:
        failed = next((s for s in shards if is_failure(s)), None)
        if failed is not None:
            self.models[model_id] = {"key": self.model_key(model_id), "status": "failed", **failed}
            return
        accuracy, merged = merge_shards(shards, with_reference=False)
        record = {"key": self.model_key(model_id), "status": "ok", "runtime": "torch",
                  "accuracy": accuracy.to_dict(), "shards": len(shards)}
        self.models[model_id], self.model_predictions[model_id] = record, Predictions.of(merged)
        self.store.write_model(model_id, record, self.model_predictions[model_id])

    def _assemble(self, ray: Any, part: dict[str, Any]) -> None:
        cell: Cell = part["cell"]
        record: dict[str, Any] = {"key": self.keys[cell.id], "params": cell.params(), "resumed": False}
        built = self._get(ray, part["build"])
        model = self.models[cell.model_id]
        if is_failure(built):
            return self._finish(cell, {**record, **built}, None, resumed=False)
        if model["status"] != "ok":
            return self._finish(cell, {**record, "status": "failed", "stage": model["stage"],
                                       "exit_code": model["exit_code"],
                                       "error": f"the float model {cell.model_id} failed: {model['error']}"},
                                None, resumed=False)
        shards = [self._get(ray, r) for r in part["shards"]]
        bench = self._get(ray, part["bench"])
        failed = next((s for s in [*shards, bench] if is_failure(s)), None)
        if failed is not None:
            return self._finish(cell, {**record, **failed}, None, resumed=False)
        accuracy, merged = merge_shards(shards, with_reference=True)
        reference = self.model_predictions[cell.model_id]
        predictions = Predictions.of(merged)
        entry = accuracy.to_dict()
        metric = self.task.metric
        entry[f"{metric}_drop"] = metric_drop(model["accuracy"], entry, metric)
        if np.array_equal(predictions.images, reference.images):
            confidence = self.sweep.recipe(cell).thresholds(cell.target).confidence or DEFAULT_CONFIDENCE
            paired = self.task.paired(reference.records, predictions.records, confidence)
            if paired is not None:
                entry["paired"] = paired.to_dict()
        prefix = f"cells/{cell.id}/"
        record.update({k: v for k, v in built.items() if k != "host"})
        record.update({"artifact": prefix + built["artifact"], "manifest": prefix + built["manifest"],
                       "accuracy": {**entry, "shards": len(shards)}, "latency": {"cpu": bench["latency"]},
                       "host": bench["host"], "build_host": built["host"], "bench_seconds": bench["seconds"]})
        self._finish(cell, record, predictions, resumed=False)

    def evidence(self, out_dir: Path) -> dict[str, Any]:
        """Per float model, the per-image evidence of it and its finished cells (the gate pairs them)."""
        written = {}
        for model_id, reference in self.model_predictions.items():
            cells = {c.id: self.predictions[c.id] for c in self.sweep.cells
                     if c.model_id == model_id and c.id in self.predictions}
            if cells:
                written[model_id] = write_evidence(Evidence.collect(self.task.name, reference, cells),
                                                   out_dir / "evidence" / f"{model_id}.json")
        return written


def run_sweep(sweep: Sweep, out_dir: Path, address: str | None = None, max_workers: int | None = None,
              force: bool = False, on_cell: Callable[[CellDone], None] | None = None) -> dict[str, Any]:
    """Run (or resume) ``sweep`` into ``out_dir``; write ``sweep.json`` and return it."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    driver = _Driver(sweep, out_dir, force, on_cell)
    todo = driver.resume()
    ray_info: dict[str, Any] | None = None
    if todo:
        with ray_session(address, max_workers) as session:
            ray_info = session.describe()
            driver.run(session, todo)
    cells = {c.id: driver.cells[c.id] for c in sweep.cells}
    failed = [i for i, c in cells.items() if c["status"] != "ok"]
    results = {
        "schema": SWEEP_SCHEMA,
        "created_utc": created_utc(),
        "task": driver.task.name,
        "sweep": {"name": sweep.name, "path": str(sweep.path), "sha256": sweep.sha256,
                  "matrix": sweep.spec.matrix.model_dump(), "model": sweep.spec.model.model_dump(exclude_none=True)},
        "evaluation": {"data": str(driver.dataset.root), "images": len(driver.dataset),
                       "fingerprint": driver.data_key, "shards": len(driver.shards),
                       "shard_images": sweep.spec.sweep.shard_images},
        "bench": sweep.spec.bench.model_dump(),
        "ray": ray_info,
        "tools": tool_versions(conversion_packages("tflite") + conversion_packages("openvino") + ("ray",)),
        "models": driver.models,
        "cells": cells,
        "evidence": driver.evidence(out_dir),
        "fronts": fronts(cells, driver.task.metric),
        "counts": {"cells": len(cells), "ran": len(todo), "resumed": len(cells) - len(todo), "failed": len(failed)},
        "failed": failed,
        "status": "failed" if failed else "ok",
        "seconds": round(time.perf_counter() - start, 2),
    }
    write_sweep(results, out_dir)
    return results
