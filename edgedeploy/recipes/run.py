"""Run a recipe: export every target, evaluate each against the float model, bench each
on the recipe's devices, and collect everything in one results dict (results.json).

Builds come from the content-addressed build cache and accuracy figures from an
evaluation cache keyed by the artifact's sha256 and the evaluation data's content, so
a second run of an unchanged recipe only re-measures latency. A target that fails is
recorded with its one-line error and the others go on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.backends import LoadOptions, Runner, load_runner
from edgedeploy.core.artifacts import atomic_path, atomic_write_text
from edgedeploy.core.cache import cache_dir, code_fingerprint, content_key
from edgedeploy.core.errors import EXIT_INTERNAL, ConfigError, EdgeDeployError
from edgedeploy.core.manifest import created_utc, tool_versions
from edgedeploy.data.datasets import ImageFolder
from edgedeploy.devices import Device, LatencyResult, builtin_devices, default_threads, get_device
from edgedeploy.export.build_cache import cached_export, conversion_packages
from edgedeploy.export.targets import float_counterpart, get_target
from edgedeploy.measure.evaluate import evaluate
from edgedeploy.measure.on_device import bench_on_device
from edgedeploy.models.weights import weights_fingerprint
from edgedeploy.recipes.results import ARTIFACTS_DIR, RESULTS_FILE, RESULTS_SCHEMA
from edgedeploy.recipes.schema import Recipe

__all__ = ["run_recipe", "Event"]

log = logging.getLogger(__name__)

REFERENCE = "pytorch"


@dataclass(frozen=True)
class Event:
    """Progress of a run: which target, which stage, and (when done) how it went."""

    target: str
    stage: str
    index: int
    total: int
    detail: str = ""


def _selected_targets(recipe: Recipe, only: list[str] | None) -> list[str]:
    names = list(recipe.spec.targets)
    if not only:
        return names
    unknown = [t for t in only if t not in names]
    if unknown:
        raise ConfigError(f"--targets {', '.join(unknown)}: not in {recipe.path.name} (it has: {', '.join(names)})")
    return [t for t in names if t in only]


class _Evaluator:
    """Evaluates models on the recipe's data against the float model's logits, with a cache."""

    def __init__(self, recipe: Recipe, force: bool):
        ev = recipe.spec.evaluation
        synsets = recipe.resolve(ev.synsets) if ev.synsets else None
        self.dataset = ImageFolder.open(recipe.resolve(ev.data), synsets).subset(ev.limit)
        self.data_key = self.dataset.fingerprint()
        self.batch_size = ev.batch_size
        self.force = force
        self.reference_key = content_key("reference", weights_fingerprint(recipe.weights), recipe.config.name,
                                         recipe.spec.preprocessing.model_dump(), self.data_key,
                                         tool_versions(("torch",)), code_fingerprint())
        self._scores_file = cache_dir("evals") / f"{self.reference_key}.npy"
        self._reference_scores: np.ndarray | None = None

    def _read(self, key: str) -> dict[str, Any] | None:
        path = cache_dir("evals") / f"{key}.json"
        if self.force or not path.is_file():
            return None
        try:
            return dict(json.loads(path.read_text()))
        except ValueError:
            return None  # a damaged entry is recomputed

    @staticmethod
    def _write(key: str, result: dict[str, Any]) -> None:
        atomic_write_text(cache_dir("evals") / f"{key}.json", json.dumps(result))

    def reference(self, runner: Runner) -> tuple[dict[str, Any], bool]:
        """The float model's accuracy; its logits are kept for every target's agreement figures."""
        cached = self._read(self.reference_key)
        if cached is not None and self._scores_file.is_file():
            return cached, True
        rows: list[np.ndarray] = []
        result = evaluate(runner, self.dataset, batch_size=self.batch_size, on_scores=rows.append).to_dict()
        self._reference_scores = np.concatenate(rows).astype(np.float32)
        with atomic_path(self._scores_file) as tmp, tmp.open("wb") as f:
            np.save(f, self._reference_scores)
        self._write(self.reference_key, result)
        return result, False

    def target(self, runner: Runner, build_key: str) -> tuple[dict[str, Any], bool]:
        # The build key, not the primary file's sha256: an IR's .bin can change while its .xml does not.
        key = content_key("target", build_key, runner.runtime, runner.execution(), self.reference_key,
                          {**runner.versions(), **tool_versions(())}, code_fingerprint())
        cached = self._read(key)
        if cached is not None:
            return cached, True
        if self._reference_scores is None:
            self._reference_scores = np.load(self._scores_file)
        result = evaluate(runner, self.dataset, self._reference_scores, self.batch_size).to_dict()
        self._write(key, result)
        return result, False


def _bench(model: str, device: Device, recipe: Recipe, options: LoadOptions) -> dict[str, Any]:
    """A results.json latency entry (edgedeploy.results/1), every timed run included."""
    spec = recipe.spec.bench
    threads = spec.threads or device.default_threads()
    result = bench_on_device(model, device, replace(options, threads=threads), spec.runs, spec.warmup)
    return result.to_dict(samples=True)


def _relative(path: str | Path, out_dir: Path) -> str:
    return Path(path).resolve().relative_to(out_dir.resolve()).as_posix()


def _run_target(
    name: str, recipe: Recipe, out_dir: Path, evaluator: _Evaluator, reference_top1: float | None,
    devices: list[Device], force: bool, progress: Callable[[str, str], None],
) -> dict[str, Any]:
    entry: dict[str, Any] = {"status": "ok", "runtime": get_target(name).runtime}
    stage = "export"
    try:
        progress(stage, "")
        threads = recipe.spec.bench.threads or default_threads()
        request = recipe.export_request(name, out_dir / ARTIFACTS_DIR, threads)
        build, cached = cached_export(request, force, on_step=lambda step: progress("export", step))
        entry.update({
            "artifact": _relative(build["path"], out_dir), "manifest": _relative(build["manifest"], out_dir),
            "size_bytes": build["size_bytes"], "sha256": build["sha256"], "parity": build["parity"],
            # Every file's digest (an IR's .bin too): the gate checks the artifacts it was given against them.
            "files": [{"name": f["name"], "sha256": f["sha256"]}
                      for f in json.loads(Path(build["manifest"]).read_text())["files"]],
            "build": {"cached": cached, "seconds": build["seconds"], "key": build["build_key"]},
        })
        stage = "eval"
        progress(stage, "")
        options = LoadOptions(threads=threads)
        runner = load_runner(build["path"], options, runtime=entry["runtime"])
        accuracy, cached = evaluator.target(runner, build["build_key"])
        drop = round(reference_top1 - accuracy["top1"], 4) if reference_top1 is not None and accuracy["top1"] is not None else None
        entry["accuracy"] = {**accuracy, "top1_drop": drop, "cached": cached}
        stage = "bench"
        entry["latency"] = {}
        for device in devices:
            progress(stage, device.name)
            entry["latency"][device.name] = _bench(build["path"], device, recipe, options)
    except EdgeDeployError as exc:
        entry.update(status="failed", stage=stage, error=" ".join(str(exc).split()), exit_code=exc.exit_code)
    except Exception as exc:  # one target's bug must not cost the others their results
        log.debug("%s failed", name, exc_info=True)
        entry.update(status="failed", stage=stage, exit_code=EXIT_INTERNAL,
                     error=f"internal error: {exc.__class__.__name__}: {' '.join(str(exc).split())[:300]}")
    return entry


def _speedups(targets: dict[str, dict[str, Any]]) -> None:
    """Each target's p50 speed-up against the float target on its runtime, per device."""

    def p50(entry: dict[str, Any]) -> dict[str, float | None]:
        return {device: LatencyResult.from_dict(lat).latency_ms.p50 for device, lat in entry["latency"].items()}

    for name, entry in targets.items():
        baseline = targets.get(float_counterpart(name))
        if name == float_counterpart(name) or entry["status"] != "ok" or not baseline or baseline["status"] != "ok":
            continue
        float_p50 = p50(baseline)
        # A device without a p50 on either side (benchmark_model printed no median) has no speed-up.
        entry["speedup_vs_float"] = {
            "baseline": float_counterpart(name),
            **{device: round(reference / own, 3) for device, own in p50(entry).items()
               if own and (reference := float_p50.get(device))},
        }


def run_recipe(
    recipe: Recipe,
    out_dir: Path,
    only: list[str] | None = None,
    force: bool = False,
    on_event: Callable[[Event], None] | None = None,
) -> dict[str, Any]:
    """Build, evaluate and bench the recipe's targets; write ``out_dir/results.json`` and return it."""
    start = time.perf_counter()
    names = _selected_targets(recipe, only)
    devices = [get_device(d) for d in recipe.spec.devices]
    out_dir = Path(out_dir)

    def emitter(target: str, index: int) -> Callable[[str, str], None]:
        return lambda stage, detail: on_event(Event(target, stage, index, len(names), detail)) if on_event else None

    # The float reference first: without it there is nothing to compare against, so its errors end the run.
    emitter(REFERENCE, 0)("eval", "")
    evaluator = _Evaluator(recipe, force)
    ref_options = recipe.reference_options(recipe.spec.bench.threads or default_threads())
    ref_runner = load_runner(recipe.weights, ref_options, runtime="torch")
    ref_accuracy, ref_cached = evaluator.reference(ref_runner)
    reference: dict[str, Any] = {"runtime": "torch", "weights": recipe.spec.model.weights,
                                 "accuracy": {**ref_accuracy, "cached": ref_cached}, "latency": {}}
    for device in devices:
        if device.runs("torch"):  # the float reference is benched where PyTorch runs
            emitter(REFERENCE, 0)("bench", device.name)
            reference["latency"][device.name] = _bench(recipe.weights, device, recipe, ref_options)

    targets: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(names, 1):
        targets[name] = _run_target(name, recipe, out_dir, evaluator, ref_accuracy["top1"], devices, force,
                                    emitter(name, index))
        emitter(name, index)("done", targets[name]["status"])
    _speedups(targets)
    failed = [n for n, t in targets.items() if t["status"] != "ok"]
    results = {
        "schema": RESULTS_SCHEMA,
        "created_utc": created_utc(),
        "recipe": {"name": recipe.name, "path": str(recipe.path), "sha256": recipe.sha256,
                   "model": recipe.spec.model.model_dump()},
        "evaluation": {"data": str(evaluator.dataset.root), "images": len(evaluator.dataset),
                       "fingerprint": evaluator.data_key},
        "host": builtin_devices()["cpu"].describe_host(),
        "devices": [d.name for d in devices],
        "tools": tool_versions(conversion_packages("tflite") + conversion_packages("openvino")),
        "reference": reference,
        "targets": targets,
        "failed": failed,
        "status": "failed" if failed else "ok",
        "seconds": round(time.perf_counter() - start, 2),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / RESULTS_FILE, json.dumps(results, indent=1) + "\n")
    return results
