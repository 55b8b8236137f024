"""The work of a sweep, as plain functions: what one Ray task runs (edgedeploy.sweep.engine makes
them remote; tests call them directly too).

A job never raises for a real failure: it returns a failure entry (stage, one-line error, exit
code), so the sweep records it and goes on; only a dead worker reaches Ray, which retries it.
Results that outlive the Ray session go to the content-addressed caches under $EDGEDEPLOY_CACHE
(builds, and here each evaluation shard): on a cluster that folder is a shared mount, so any node
reuses what another built, and a re-run after an interrupt finds everything finished.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgedeploy.core.cache import cache_dir
from edgedeploy.data.datasets import ImageFolder
from edgedeploy.devices import builtin_devices
from edgedeploy.exporter.targets import get_target
from edgedeploy.measure.on_device import bench_on_device
from edgedeploy.measure.sharded import ShardResult, evaluate_shard
from edgedeploy.recipes.run import build_entry, failure_entry, target_key
from edgedeploy.recipes.schema import Recipe
from edgedeploy.runtimes import LoadOptions, load_runner

__all__ = ["Failure", "is_failure", "build", "reference_shard", "target_shard", "bench", "host_info"]

# What a job returns instead of its result when it failed for a real reason.
Failure = dict[str, Any]


def is_failure(value: object) -> bool:
    return isinstance(value, dict) and value.get("status") == "failed"


def host_info() -> dict[str, Any]:
    """Where a job ran: the host name, its CPU (with int8 features) and the worker's process id."""
    return {"hostname": socket.gethostname(), "cpu": builtin_devices()["cpu"].describe_host(), "pid": os.getpid()}


def build(recipe: Recipe, target: str, out_dir: Path, threads: int, force: bool) -> dict[str, Any] | Failure:
    """Export the cell's target into ``out_dir/artifacts`` through the build cache."""
    try:
        return {"status": "ok", "runtime": get_target(target).runtime, "host": host_info(),
                **build_entry(target, recipe, out_dir, threads, force)}
    except Exception as exc:  # noqa: BLE001 - recorded as the cell's failure, the sweep goes on
        return failure_entry("export", exc)


def _cached(key: str, force: bool, compute: Any) -> ShardResult:
    path = cache_dir("eval-shards") / f"{key}.json"
    if not force and path.is_file():
        try:
            return ShardResult.load(path)
        except (OSError, ValueError, KeyError):
            pass  # a damaged entry is recomputed
    result = compute()
    result.save(path)
    return result


def reference_shard(recipe: Recipe, shard: ImageFolder, key: str, threads: int, batch_size: int,
                    force: bool) -> ShardResult | Failure:
    """The float (PyTorch) model on one shard (cache key ``key``: recipes.run.reference_key of the
    shard), its logits kept for the targets' agreement figures."""
    try:
        def compute() -> ShardResult:
            runner = recipe.model.load_reference(threads)
            return evaluate_shard(runner, shard, None, batch_size, keep_scores=True)

        return _cached(key, force, compute)
    except Exception as exc:  # noqa: BLE001
        return failure_entry("eval", exc)


def target_shard(built: dict[str, Any] | Failure, reference: ShardResult | Failure, reference_key: str,
                 shard: ImageFolder, out_dir: Path, threads: int, batch_size: int,
                 force: bool) -> ShardResult | Failure | None:
    """A built target on one shard against the float model's logits there; None when there is
    nothing to evaluate (the build failed: the cell already has its error)."""
    if is_failure(built):
        return None
    if is_failure(reference):
        return reference
    try:
        runner = load_runner(out_dir / built["artifact"], LoadOptions(threads=threads), runtime=built["runtime"])
        key = target_key(runner, built["build"]["key"], reference_key)
        return _cached(key, force, lambda: evaluate_shard(runner, shard, reference.scores, batch_size))
    except Exception as exc:  # noqa: BLE001
        return failure_entry("eval", exc)


def bench(built: dict[str, Any] | Failure, recipe: Recipe, out_dir: Path) -> dict[str, Any] | Failure | None:
    """The built target's latency on this host's CPU, every timed run kept, with the host it ran on.
    The engine gives this job every CPU of its host, so nothing else Ray runs shares the machine."""
    if is_failure(built):
        return None
    spec = recipe.spec.bench
    device = builtin_devices()["cpu"]
    try:
        start = time.perf_counter()
        options = replace(LoadOptions(), threads=spec.threads or device.default_threads())
        result = bench_on_device(str(out_dir / built["artifact"]), device, options, spec.runs, spec.warmup)
        return {"status": "ok", "latency": result.to_dict(samples=True), "host": host_info(),
                "seconds": round(time.perf_counter() - start, 3)}
    except Exception as exc:  # noqa: BLE001
        return failure_entry("bench", exc)
