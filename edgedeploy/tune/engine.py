"""Tune a target: build every candidate (through the build cache, or as Ray tasks of the sweep machinery),
evaluate each against the float model on the validation data with per-image evidence, accept a candidate only
when the upper bound of its paired drop interval is within the budget, bench the accepted ones in interleaved
rounds, keep the fastest. Everything lands in the output folder: the generated recipe (tune.yaml), each
candidate's build, the chosen artifact with its manifest, and the decision record (tune.json) listing every
candidate with its options, accuracy and interval, p50 and why it was kept or rejected.

A re-run is cheap: builds come from the build cache and figures from the evaluation cache (both keyed by
content), so an interrupted tune resumes where it stopped.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgedeploy.core.artifacts import atomic_path, atomic_write_text, output_dir
from edgedeploy.core.errors import ConfigError, EdgeDeployError
from edgedeploy.core.jsonfile import json_text
from edgedeploy.core.manifest import created_utc, manifest_path
from edgedeploy.devices import builtin_devices, default_threads
from edgedeploy.diagnose.analysis import diagnose
from edgedeploy.exporter.options import resolve_options
from edgedeploy.exporter.targets import float_counterpart, get_target
from edgedeploy.recipes.evidence import Evidence
from edgedeploy.recipes.interleaved import BenchJob, bench_interleaved
from edgedeploy.recipes.run import Evaluator, build_entry, failure_entry
from edgedeploy.recipes.schema import Recipe, TargetSpec, load_recipe
from edgedeploy.runtimes import LoadOptions, get_runtime, load_runner
from edgedeploy.tune.candidates import Candidate, default_candidates

__all__ = ["TuneRequest", "run_tune", "TUNE_SCHEMA", "RECORD_FILE"]

TUNE_SCHEMA = "edgedeploy.tune/1"
RECORD_FILE = "tune.json"
# Layers diagnose suggests keeping in float for the keep-float candidate.
KEEP_FLOAT_LAYERS = 3


@dataclass(frozen=True)
class TuneRequest:
    target: str
    val: Path
    max_drop: float
    out_dir: Path
    # The recipe's model section (arch, width, resolution, num_classes, options, weights) and preprocessing.
    model: dict[str, Any] = field(default_factory=lambda: {"weights": "sample"})
    preprocessing: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    # Evaluation data options (synsets, ignore_index, mask_format) and batch size.
    evaluation: dict[str, Any] = field(default_factory=dict)
    # Target options every candidate keeps (weight_granularity, io_dtype, input_layout).
    fixed: dict[str, Any] = field(default_factory=dict)
    metric: str | None = None
    confidence: float = 0.95
    runs: int = 50
    warmup: int = 10
    rounds: int = 3
    threads: int | None = None
    max_workers: int | None = None
    ray_address: str | None = None
    force: bool = False


def _write_recipe(request: TuneRequest, out: Path) -> Recipe:
    """The tune as a recipe (the target with the fixed options), written beside the results and loaded
    with every check a recipe gets."""
    spec: dict[str, Any] = {
        "name": f"tune-{request.target}",
        "description": f"edgedeploy tune of {request.target}: the fastest build within {request.max_drop} points",
        "model": request.model,
        "evaluation": {"data": str(Path(request.val).resolve()), **request.evaluation},
        "bench": {"runs": request.runs, "warmup": request.warmup, "rounds": request.rounds,
                  **({"threads": request.threads} if request.threads else {})},
        "targets": {request.target: dict(request.fixed)},
    }
    if request.preprocessing:
        spec["preprocessing"] = request.preprocessing
    if request.calibration:
        spec["calibration"] = request.calibration
    path = out / "tune.yaml"
    atomic_write_text(path, "# Written by edgedeploy tune: `edgedeploy run` rebuilds the base target.\n"
                            + yaml.safe_dump(spec, sort_keys=False))
    recipe = load_recipe(path)
    metric_key = recipe.task.drop_threshold
    thresholds = {metric_key: request.max_drop, "confidence": request.confidence}
    spec["thresholds"] = thresholds
    atomic_write_text(path, "# Written by edgedeploy tune: `edgedeploy run` rebuilds the base target.\n"
                            + yaml.safe_dump(spec, sort_keys=False))
    return load_recipe(path)


def _candidate_recipe(base: Recipe, target: str, candidate: Candidate) -> Recipe:
    # The export's own parity floor is lifted: a candidate is judged by its paired drop on the validation data
    # (stricter, and it gives every candidate a figure); its parity is still measured and recorded.
    options = {**candidate.options, "parity": {"min_agreement": 0.0}}
    spec = base.spec.model_copy(update={"targets": {target: TargetSpec.model_validate(options)}})
    resolve_options(get_target(target), {k: (tuple(v) if isinstance(v, list) else v)
                                         for k, v in candidate.options.items()})
    return Recipe(spec=spec, path=base.path, sha256=base.sha256)


class _Tune:
    def __init__(self, request: TuneRequest, on_event: Callable[[str, str], None]):
        self.request, self.on_event = request, on_event
        self.out = output_dir(request.out_dir)
        self.base = _write_recipe(request, self.out)
        self.task = self.base.task
        if request.metric is not None and request.metric != self.task.metric:
            raise ConfigError(f"--metric {request.metric} does not apply to {self.base.config.arch}: a "
                              f"{self.task.name} model's metric is {self.task.metric}")
        self.target = get_target(request.target)
        if not self.target.calibrated:
            raise ConfigError(f"tune chooses among quantized builds; {request.target} is not quantized "
                              "(tune an int8 target, e.g. tflite-int8)")
        self.threads = request.threads or default_threads()
        self.evaluator = Evaluator(self.base, request.force)
        self.records: dict[str, dict[str, Any]] = {}
        self.evidence_of: dict[str, Any] = {}

    def reference(self) -> dict[str, Any]:
        self.on_event("pytorch", "float model")
        runner = self.base.model.load_reference(self.threads)
        accuracy, _ = self.evaluator.reference(runner)
        return accuracy

    def build(self, candidates: list[Candidate]) -> dict[str, dict[str, Any]]:
        """Each candidate's build entry (or failure), locally or as Ray tasks."""
        jobs = {c.id: (_candidate_recipe(self.base, self.request.target, c), self.out / "candidates" / c.id)
                for c in candidates}
        if self.request.max_workers is None and self.request.ray_address is None:
            built = {}
            for cid, (recipe, folder) in jobs.items():
                self.on_event(cid, "build")
                try:
                    built[cid] = {"status": "ok", **build_entry(self.request.target, recipe, folder, self.threads,
                                                                self.request.force)}
                except Exception as exc:  # noqa: BLE001 - one candidate's failure is recorded, the others go on
                    built[cid] = failure_entry("export", exc)
            return built
        from edgedeploy.sweep.ray_session import ray_session

        with ray_session(self.request.ray_address, self.request.max_workers) as session:
            self.on_event("ray", f"{len(jobs)} builds on {session.cpus} CPUs")
            refs = {cid: session.remote["build"].remote(recipe, self.request.target, folder, 1, self.request.force)
                    for cid, (recipe, folder) in jobs.items()}
            return {cid: session.ray.get(ref) for cid, ref in refs.items()}

    def evaluate(self, candidate: Candidate, built: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
        metric = self.task.metric
        record: dict[str, Any] = {"id": candidate.id, "options": candidate.options, "describe": candidate.describe()}
        if built.get("status") != "ok":
            return {**record, "status": "failed", "verdict": "rejected", "stage": built.get("stage"),
                    "why": f"failed at {built.get('stage')}: {built.get('error')}"}
        self.on_event(candidate.id, "evaluate")
        folder = self.out / "candidates" / candidate.id
        runner = load_runner(folder / built["artifact"], LoadOptions(threads=self.threads),
                             runtime=self.target.runtime)
        accuracy, cached = self.evaluator.target(candidate.id, runner, built["build"]["key"])
        evidence = Evidence.collect(self.task.name, self.evaluator.reference_predictions,
                                    {candidate.id: self.evaluator.predictions[candidate.id]})
        paired = evidence.paired(candidate.id, self.request.confidence)
        drop = round(reference[metric] - accuracy[metric], 4) \
            if reference.get(metric) is not None and accuracy.get(metric) is not None else None
        upper = paired.drop.high if paired is not None else drop
        accepted = upper is not None and upper <= self.request.max_drop
        budget = f"{self.request.max_drop:.2f} pts"
        why = (f"{'within' if accepted else 'over'} the budget: upper bound {upper:.2f} pts "
               f"{'<=' if accepted else '>'} {budget}" if paired is not None else
               f"{'within' if accepted else 'over'} the budget (point estimate {drop} pts; no paired evidence)")
        return {**record, "status": "ok", "artifact": str(folder / built["artifact"]), "build": built["build"],
                "size_bytes": built["size_bytes"], "sha256": built["sha256"],
                "accuracy": {metric: accuracy[metric], "drop": drop, "agreement": accuracy.get("agreement"),
                             "interval": [paired.drop.low, paired.drop.high] if paired else None,
                             "paired": paired.to_dict() if paired else None, "cached": cached},
                "verdict": "accepted" if accepted else "rejected", "why": why}

    def keep_float_candidate(self, best: dict[str, Any]) -> Candidate | None:
        """The best candidate so far with the layers diagnose suggests kept in float; None where the target
        keeps no layer in float or its runtime shows no per-layer outputs."""
        if not self.target.keeps_float or get_runtime(self.target.runtime).layer_taps is None:
            return None
        counterpart = float_counterpart(self.request.target)
        float_recipe = Recipe(spec=self.base.spec.model_copy(update={"targets": {counterpart: TargetSpec()}}),
                              path=self.base.path, sha256=self.base.sha256)
        self.on_event(counterpart, "build the float reference for diagnose")
        folder = self.out / "candidates" / "float"
        entry = build_entry(counterpart, float_recipe, folder, self.threads, self.request.force)
        self.on_event(best["id"], "diagnose")
        report = diagnose(best["artifact"], str(folder / entry["artifact"]), self.request.val,
                          suggestions=KEEP_FLOAT_LAYERS, threads=self.threads)
        layers = report["suggestions"]["layers"]
        if not layers:
            return None
        options = {**next(c for c in self.candidates if c.id == best["id"]).options, "keep_float": layers}
        return Candidate(f"{best['id']}-keep-float", options)

    def bench(self, accepted: list[dict[str, Any]]) -> None:
        spec = self.base.spec.bench
        jobs = [BenchJob(r["id"], r["artifact"], LoadOptions()) for r in accepted]
        measured = bench_interleaved(jobs, builtin_devices()["cpu"], spec.runs, spec.warmup, spec.rounds, spec.threads,
                                     lambda name, detail: self.on_event(name, f"bench {detail}"))
        for record in accepted:
            result = measured[record["id"]]
            if isinstance(result, Exception):
                record.update(verdict="rejected", why=f"bench failed: {' '.join(str(result).split())}")
            else:
                record["p50_ms"] = round(result.latency_ms.p50, 4)

    def run(self) -> dict[str, Any]:
        start = time.perf_counter()
        reference = self.reference()
        self.candidates = default_candidates(self.target, self.request.fixed)
        built = self.build(self.candidates)
        records = [self.evaluate(c, built[c.id], reference) for c in self.candidates]
        notes: list[str] = []
        if not any(r["verdict"] == "accepted" for r in records):
            # diagnose matches layers with the float export of the same graph: not with an equalized one, whose
            # ReLU6s became per-channel clamps.
            ok = [r for r in records if r["status"] == "ok" and r["accuracy"]["drop"] is not None
                  and "cle" not in r["options"].get("ptq", [])]
            best = min(ok, key=lambda r: r["accuracy"]["drop"], default=None)
            extra = None
            try:
                extra = self.keep_float_candidate(best) if best is not None else None
            except EdgeDeployError as exc:
                notes.append(f"no keep-float candidate: diagnose failed ({' '.join(str(exc).split())})")
            if extra is not None:
                self.candidates.append(extra)
                records.append(self.evaluate(extra, self.build([extra])[extra.id], reference))
            elif best is not None and not notes:
                notes.append(f"no keep-float candidate: {self.request.target} keeps no layer in float or its runtime "
                             "shows no per-layer outputs")
        accepted = [r for r in records if r["verdict"] == "accepted"]
        if accepted:
            self.bench(accepted)
        timed = [r for r in records if r["verdict"] == "accepted" and "p50_ms" in r]
        chosen = min(timed, key=lambda r: r["p50_ms"]) if timed else None
        for r in timed:
            r["kept"] = r is chosen
            if r is not chosen:
                r["why"] += f"; slower than {chosen['id']} ({r['p50_ms']:.2f} vs {chosen['p50_ms']:.2f} ms p50)"
        artifact = self._publish(chosen) if chosen else None
        ok = [r for r in records if r["status"] == "ok" and r["accuracy"]["drop"] is not None]
        best = min(ok, key=lambda r: r["accuracy"]["drop"], default=None)
        record = {
            "schema": TUNE_SCHEMA, "created_utc": created_utc(), "target": self.request.target,
            "task": self.task.name, "metric": self.task.metric, "max_drop": self.request.max_drop,
            "confidence": self.request.confidence, "recipe": str(self.base.path),
            "float": {self.task.metric: reference[self.task.metric], "n": reference["n"]},
            "candidates": records, "chosen": chosen["id"] if chosen else None, "artifact": artifact,
            "best": {"id": best["id"], "drop": best["accuracy"]["drop"]} if best else None,
            "status": "chosen" if chosen else "none within budget", "notes": notes,
            "seconds": round(time.perf_counter() - start, 1),
        }
        atomic_write_text(self.out / RECORD_FILE, json_text(record, indent=1) + "\n")
        return record

    def _publish(self, chosen: dict[str, Any]) -> str:
        """The chosen build's files (artifact, companions, manifest) copied into the output folder."""
        source = Path(chosen["artifact"])
        manifest = json.loads(manifest_path(source).read_text())
        # Companions first and the manifest last, each atomically: no half-copied artifact looks complete.
        for path in [*(source.with_name(f["name"]) for f in manifest["files"] if f["name"] != source.name), source,
                     manifest_path(source)]:
            with atomic_path(self.out / path.name) as tmp:
                shutil.copyfile(path, tmp)
        return str(self.out / source.name)


def run_tune(request: TuneRequest, on_event: Callable[[str, str], None] = lambda *_: None) -> dict[str, Any]:
    """Tune ``request.target``; writes the output folder and returns the decision record."""
    return _Tune(request, on_event).run()
