"""Run a recipe: export every target, evaluate each against the float model, bench each
on the recipe's devices (all targets in interleaved rounds), and collect everything in one
results dict (results.json) with the per-image records beside it (results.evidence.npz) and, for
tasks that show them, pictures of every model's predictions on a few images (pictures/).

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

from edgedeploy.core.artifacts import atomic_path, atomic_write_text, output_dir
from edgedeploy.core.cache import cache_dir, code_fingerprint, content_key
from edgedeploy.core.errors import EXIT_INTERNAL, ConfigError, EdgeDeployError
from edgedeploy.core.hashing import with_digest
from edgedeploy.core.io_spec import Outputs
from edgedeploy.core.jsonfile import json_text
from edgedeploy.core.manifest import created_utc, tool_versions
from edgedeploy.core.outputs import concat_outputs, load_outputs, save_outputs
from edgedeploy.core.stats import DEFAULT_CONFIDENCE
from edgedeploy.data.preprocess import preprocess
from edgedeploy.devices import Device, builtin_devices, default_threads, get_device
from edgedeploy.exporter.build_cache import cached_export, conversion_packages
from edgedeploy.exporter.targets import float_counterpart, get_target
from edgedeploy.measure.evaluate import batches
from edgedeploy.measure.on_device import bench_on_device, eval_runner
from edgedeploy.measure.sharded import evaluate_shard
from edgedeploy.recipes.evidence import Evidence, Predictions, write_evidence
from edgedeploy.recipes.interleaved import BenchJob, bench_interleaved
from edgedeploy.recipes.results import ARTIFACTS_DIR, DIGEST_KEY, RESULTS_FILE, RESULTS_SCHEMA, latency_ratio
from edgedeploy.recipes.schema import Recipe
from edgedeploy.runtimes import LoadOptions, Runner, load_runner

__all__ = ["run_recipe", "Event", "Evaluator", "build_entry", "failure_entry", "reference_key", "target_key",
           "REFERENCE", "PICTURES_DIR", "metric_drop"]

log = logging.getLogger(__name__)

REFERENCE = "pytorch"
PICTURES_DIR = "pictures"


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


def reference_key(recipe: Recipe, data_key: str) -> str:
    """The evaluation cache's key of the recipe's float model on the data ``data_key`` fingerprints."""
    return content_key("reference", recipe.model.fingerprint, recipe.config.name,
                       recipe.spec.preprocessing.model_dump(), data_key,
                       tool_versions(("torch",) if recipe.model.reference_runtime == "torch" else ("onnxruntime",)),
                       code_fingerprint())


def target_key(runner: Runner, build_key: str, reference: str) -> str:
    """The evaluation cache's key of a built target against the float model's ``reference`` key."""
    # The build key, not the primary file's sha256: an IR's .bin can change while its .xml does not.
    return content_key("target", build_key, runner.runtime, runner.execution(), reference,
                       {**runner.versions(), **tool_versions(())}, code_fingerprint())


class Evaluator:
    """Evaluates models on the recipe's data against the float model's logits, with a cache that
    keeps each model's figures and its per-image predictions (the run's evidence)."""

    def __init__(self, recipe: Recipe, force: bool):
        self.task = recipe.task
        self.dataset = recipe.open_evaluation_data()
        self.data_key = self.dataset.fingerprint()
        self.batch_size = recipe.spec.evaluation.batch_size
        self.force = force
        self.reference_key = reference_key(recipe, self.data_key)
        self._scores_file = cache_dir("evals") / f"{self.reference_key}.npy"
        self._reference_scores: Outputs | None = None
        self.reference_predictions: Predictions | None = None
        self.predictions: dict[str, Predictions] = {}

    def _read(self, key: str) -> tuple[dict[str, Any], Predictions] | None:
        path = cache_dir("evals") / f"{key}.json"
        if self.force or not path.is_file():
            return None
        try:
            return dict(json.loads(path.read_text())), Predictions.load(path.with_suffix(".npz"))
        except (OSError, ValueError, KeyError):
            return None  # a damaged or incomplete entry is recomputed

    @staticmethod
    def _write(key: str, result: dict[str, Any], predictions: Predictions) -> None:
        predictions.save(cache_dir("evals") / f"{key}.npz")
        atomic_write_text(cache_dir("evals") / f"{key}.json", json_text(result))

    def _evaluate(self, runner: Runner, keep_scores: bool) -> tuple[dict[str, Any], Predictions, Outputs | None]:
        # The whole set as one shard: the same accumulation a sweep's shards merge.
        shard = evaluate_shard(runner, self.dataset, self._reference_scores, self.batch_size, keep_scores)
        result = shard.accumulator.result(shard.skipped, shard.seconds, self._reference_scores is not None)
        return result.to_dict(), Predictions.of(shard), shard.scores

    def reference(self, runner: Runner) -> tuple[dict[str, Any], bool]:
        """The float model's accuracy; its logits are kept for every target's agreement figures."""
        cached = self._read(self.reference_key)
        if cached is not None and self._scores_file.is_file():
            result, self.reference_predictions = cached
            return result, True
        result, self.reference_predictions, self._reference_scores = self._evaluate(runner, keep_scores=True)
        with atomic_path(self._scores_file) as tmp, tmp.open("wb") as f:
            save_outputs(f, self._reference_scores)
        self._write(self.reference_key, result, self.reference_predictions)
        return result, False

    def target(self, name: str, runner: Runner, build_key: str) -> tuple[dict[str, Any], bool]:
        key = target_key(runner, build_key, self.reference_key)
        cached = self._read(key)
        if cached is not None:
            result, self.predictions[name] = cached
            return result, True
        if self._reference_scores is None:
            # Memory-mapped: a dense task's float outputs (257 x 257 x 21 floats an image) stay on disk.
            self._reference_scores = load_outputs(self._scores_file)
        result, self.predictions[name], _ = self._evaluate(runner, keep_scores=False)
        self._write(key, result, self.predictions[name])
        return result, False

    def evidence(self, names: list[str]) -> Evidence:
        """The run's evidence file content: the float model and every evaluated target among ``names``."""
        assert self.reference_predictions is not None, "the reference is evaluated first"
        return Evidence.collect(self.task.name, self.reference_predictions,
                                {n: self.predictions[n] for n in names if n in self.predictions})


def _bench(model: str, device: Device, recipe: Recipe, options: LoadOptions) -> dict[str, Any]:
    """A results.json latency entry, every timed run included."""
    spec = recipe.spec.bench
    threads = spec.threads or device.default_threads()
    result = bench_on_device(model, device, replace(options, threads=threads), spec.runs, spec.warmup)
    return result.to_dict(samples=True)


def _relative(path: str | Path, out_dir: Path) -> str:
    return Path(path).resolve().relative_to(out_dir.resolve()).as_posix()


def failure_entry(stage: str, exc: Exception) -> dict[str, Any]:
    """A failed target's fields: the stage, one line of error and its exit code."""
    if isinstance(exc, EdgeDeployError):
        return {"status": "failed", "stage": stage, "error": " ".join(str(exc).split()), "exit_code": exc.exit_code}
    log.debug("failed at %s", stage, exc_info=exc)
    return {"status": "failed", "stage": stage, "exit_code": EXIT_INTERNAL,
            "error": f"internal error: {exc.__class__.__name__}: {' '.join(str(exc).split())[:300]}"}


def build_entry(name: str, recipe: Recipe, out_dir: Path, threads: int, force: bool,
                on_step: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Export one recipe target into ``out_dir/artifacts`` (or reuse its cached build): its results
    entry fields (artifact and manifest relative to ``out_dir``, size, digests, parity, build)."""
    request = recipe.export_request(name, out_dir / ARTIFACTS_DIR, threads)
    build, cached = cached_export(request, force, on_step=on_step)
    return {
        "artifact": _relative(build["path"], out_dir), "manifest": _relative(build["manifest"], out_dir),
        "size_bytes": build["size_bytes"], "sha256": build["sha256"], "parity": build["parity"],
        # Every file's digest (an IR's .bin too): the gate checks the artifacts it was given against them.
        "files": [{"name": f["name"], "sha256": f["sha256"]}
                  for f in json.loads(Path(build["manifest"]).read_text())["files"]],
        "build": {"cached": cached, "seconds": build["seconds"], "key": build["build_key"]},
    }


def metric_drop(reference: dict[str, Any], accuracy: dict[str, Any], metric: str) -> float | None:
    """The float model's metric minus a target's, in points (None when either is undefined)."""
    before, now = reference.get(metric), accuracy.get(metric)
    return round(before - now, 4) if before is not None and now is not None else None


def _build_and_evaluate(
    name: str, recipe: Recipe, out_dir: Path, evaluator: Evaluator, reference: dict[str, Any], force: bool,
    progress: Callable[[str, str], None],
) -> dict[str, Any]:
    entry: dict[str, Any] = {"status": "ok", "runtime": get_target(name).runtime}
    stage = "export"
    try:
        progress(stage, "")
        threads = recipe.spec.bench.threads or default_threads()
        entry.update(build_entry(name, recipe, out_dir, threads, force, lambda step: progress("export", step)))
        stage = "eval"
        progress(stage, "")
        device = get_device(recipe.spec.evaluation.device)
        artifact = str(out_dir / entry["artifact"])
        runner = (eval_runner(artifact, device, LoadOptions(threads=threads)) if device.accelerator != "cpu"
                  else load_runner(artifact, LoadOptions(threads=threads), runtime=entry["runtime"]))
        accuracy, cached = evaluator.target(name, runner, entry["build"]["key"])
        metric = recipe.task.metric
        entry["accuracy"] = {**accuracy, f"{metric}_drop": metric_drop(reference, accuracy, metric), "cached": cached}
        if device.accelerator != "cpu":  # which accelerator and adapter the accuracy comes from
            entry["accuracy"]["execution"] = runner.execution()
    except Exception as exc:  # one target's failure or bug must not cost the others their results
        entry.update(failure_entry(stage, exc))
    return entry


def _bench_targets(recipe: Recipe, out_dir: Path, targets: dict[str, dict[str, Any]], devices: list[Device],
                   progress: Callable[[str, str, str], None]) -> None:
    """Every built target's latency on every device, in interleaved rounds (see recipes.interleaved)."""
    spec = recipe.spec.bench
    for entry in targets.values():
        if entry["status"] == "ok":
            entry["latency"] = {}
    for device in devices:
        jobs = [BenchJob(name, str(out_dir / entry["artifact"]), LoadOptions())
                for name, entry in targets.items() if entry["status"] == "ok"]
        measured = bench_interleaved(jobs, device, spec.runs, spec.warmup, spec.rounds, spec.threads,
                                     lambda name, detail: progress(name, "bench", detail))
        for name, result in measured.items():
            if isinstance(result, Exception):
                targets[name].update(failure_entry("bench", result))
            else:
                targets[name]["latency"][device.name] = result.to_dict(samples=True)


def _versus_float(recipe: Recipe, targets: dict[str, dict[str, Any]], evidence: Evidence) -> None:
    """Each target against the float model: the paired statistics of its metric and its agreement (with
    per-image evidence) and, per device, the p50 speed-up and latency ratio against the float target on its
    runtime."""
    for name, entry in targets.items():
        if entry["status"] != "ok":
            continue
        confidence = recipe.thresholds(name).confidence or DEFAULT_CONFIDENCE
        paired = evidence.paired(name, confidence)
        if paired is not None:
            entry["accuracy"]["paired"] = paired.to_dict()
        agreement = evidence.agreement(name, confidence)
        if agreement is not None:
            entry["accuracy"]["agreement_interval"] = agreement.to_dict()
        counterpart = float_counterpart(name)
        baseline = targets.get(counterpart)
        if name == counterpart or not baseline or baseline["status"] != "ok":
            continue
        # A device without a p50 on either side (benchmark_model printed no median) has no speed-up.
        entry["speedup_vs_float"] = {"baseline": counterpart, **{
            device: round(reference / own, 3) for device, lat in entry["latency"].items()
            if (own := lat["latency_ms"].get("p50")) and (reference := baseline["latency"].get(device, {})
                                                          .get("latency_ms", {}).get("p50"))}}
        ratios = {device: ratio.to_dict() for device in entry["latency"]
                  if (ratio := latency_ratio(targets, name, device, confidence)) is not None}
        if ratios:
            entry["latency_ratio_vs_float"] = {"baseline": counterpart, **ratios}


def _pictures(recipe: Recipe, evaluator: Evaluator, reference: Runner, targets: dict[str, dict[str, Any]],
              out_dir: Path) -> dict[str, Any] | None:
    """The task's pictures of the float model's and every built target's predictions on the first images of
    the evaluation data (``out_dir/pictures``), or None for a task that shows none."""
    count = recipe.task.report_images
    if not count:
        return None
    images = next(batches(evaluator.dataset, count), [])
    threads = recipe.spec.bench.threads or default_threads()
    runners = {REFERENCE: reference, **{name: load_runner(out_dir / entry["artifact"], LoadOptions(threads=threads),
                                                          runtime=entry["runtime"])
                                        for name, entry in targets.items() if entry["status"] == "ok"}}
    predictions = {name: recipe.task.picture_outputs(runner.io, concat_outputs(
        [runner.predict(preprocess(item.image, runner.io.preprocessing)[None]) for item in images]))
        for name, runner in runners.items()}
    return recipe.task.pictures(images, predictions, out_dir / PICTURES_DIR)


def run_recipe(
    recipe: Recipe,
    out_dir: Path,
    only: list[str] | None = None,
    force: bool = False,
    on_event: Callable[[Event], None] | None = None,
) -> dict[str, Any]:
    """Build, evaluate and bench the recipe's targets; write ``out_dir/results.json`` (and the per-image
    evidence beside it) and return it."""
    start = time.perf_counter()
    names = _selected_targets(recipe, only)
    devices = [get_device(d) for d in recipe.spec.devices]
    out_dir = Path(out_dir)

    def emit(target: str, stage: str, detail: str) -> None:
        if on_event:
            on_event(Event(target, stage, names.index(target) + 1 if target in names else 0, len(names), detail))

    # The float reference first: without it there is nothing to compare against, so its errors end the run.
    emit(REFERENCE, "eval", "")
    evaluator = Evaluator(recipe, force)
    ref_options = recipe.reference_options(recipe.spec.bench.threads or default_threads())
    ref_runner = recipe.model.load_reference(ref_options.threads)
    ref_accuracy, ref_cached = evaluator.reference(ref_runner)
    reference: dict[str, Any] = {"runtime": recipe.model.reference_runtime, "weights": recipe.weights_name,
                                 "accuracy": {**ref_accuracy, "cached": ref_cached}, "latency": {}}
    for device in devices:
        if device.runs(recipe.model.reference_runtime):  # the float reference is benched where its runtime runs
            emit(REFERENCE, "bench", device.name)
            reference["latency"][device.name] = _bench(recipe.model.reference_model, device, recipe, ref_options)

    targets = {name: _build_and_evaluate(name, recipe, out_dir, evaluator, ref_accuracy, force,
                                         lambda stage, detail, name=name: emit(name, stage, detail))
               for name in names}
    _bench_targets(recipe, out_dir, targets, devices, emit)
    for name in names:
        emit(name, "done", targets[name]["status"])
    evidence = evaluator.evidence(names)
    _versus_float(recipe, targets, evidence)
    failed = [n for n, t in targets.items() if t["status"] != "ok"]
    output_dir(out_dir)
    pictures = _pictures(recipe, evaluator, ref_runner, targets, out_dir)
    results = {
        "schema": RESULTS_SCHEMA,
        "created_utc": created_utc(),
        "task": recipe.task.name,
        "recipe": {"name": recipe.name, "path": str(recipe.path), "sha256": recipe.sha256,
                   "model": recipe.model_identity},
        "evaluation": {"data": str(evaluator.dataset.root), "images": len(evaluator.dataset),
                       "fingerprint": evaluator.data_key, "device": recipe.spec.evaluation.device},
        **({"pictures": pictures} if pictures else {}),
        "evidence": write_evidence(evidence, out_dir / RESULTS_FILE),
        "host": builtin_devices()["cpu"].describe_host(),
        "devices": [d.name for d in devices],
        "bench": recipe.spec.bench.model_dump(),
        "tools": tool_versions(conversion_packages("tflite") + conversion_packages("openvino")),
        "reference": reference,
        "targets": targets,
        "failed": failed,
        "status": "failed" if failed else "ok",
        "seconds": round(time.perf_counter() - start, 2),
    }
    results = with_digest(results, DIGEST_KEY)
    atomic_write_text(out_dir / RESULTS_FILE, json_text(results, indent=1) + "\n")
    return results
