"""Latency of one runner: warm-up, timed runs, percentiles, throughput, memory."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.limits import MAX_RUNS, MAX_WARMUP
from edgedeploy.data.synthetic import synthetic_images
from edgedeploy.devices.latency import InProcessFigures, LatencyResult, LatencyStats
from edgedeploy.runtimes.base import LoadOptions, Runner

__all__ = ["BenchResult", "benchmark", "check_run_counts", "host_step_latency", "latency_stats", "merge_rounds",
           "rss_mb"]



@dataclass
class BenchResult:
    latency_ms: dict[str, float]
    runs: int
    warmup: int
    throughput_ips: float
    peak_rss_mb: float
    rss_after_load_mb: float | None
    # Every timed run, in order (for distribution plots); left out of to_dict() by default.
    samples_ms: list[float]

    def to_dict(self, samples: bool = False) -> dict[str, object]:
        out = asdict(self)
        if not samples:
            del out["samples_ms"]
        return out


def rss_mb() -> float | None:
    """Current resident set size, from /proc (Linux); None elsewhere."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is KiB on Linux, bytes on macOS.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def check_run_counts(runs: int, warmup: int) -> None:
    if not 1 <= runs <= MAX_RUNS:
        raise ConfigError(f"--runs must be between 1 and {MAX_RUNS}, got {runs}")
    if not 0 <= warmup <= MAX_WARMUP:
        raise ConfigError(f"--warmup must be between 0 and {MAX_WARMUP}, got {warmup}")


def latency_stats(times: np.ndarray) -> dict[str, float]:
    """The in-process timing loop's statistics of timed runs (ms)."""
    latency = {
        "p50": float(np.percentile(times, 50)),
        "p90": float(np.percentile(times, 90)),
        "p99": float(np.percentile(times, 99)),
        "mean": float(times.mean()),
        "std": float(times.std()),
        "min": float(times.min()),
        "max": float(times.max()),
    }
    return {k: round(v, 4) for k, v in latency.items()}


def merge_rounds(rounds: list[LatencyResult]) -> LatencyResult:
    """One result from several rounds of the in-process loop on one model (interleaved with other
    models' rounds): every timed run, statistics over all of them. Warm-up is per round."""
    first = rounds[0]
    if len(rounds) == 1:
        return first
    if any(r.in_process is None for r in rounds):
        raise ValueError("only in-process results (with every timed run) can be merged")
    samples = [t for r in rounds for t in r.in_process.samples_ms]
    latency = latency_stats(np.asarray(samples))
    figures = first.in_process
    # Every round feeds the same batch, so throughput scales with the mean latency.
    throughput = round(figures.throughput_ips * first.latency_ms.mean / latency["mean"], 2)
    peak = max(r.in_process.peak_rss_mb for r in rounds)
    return replace(first, runs=len(samples), latency_ms=LatencyStats.from_dict(latency),
                   in_process=InProcessFigures(throughput, peak, figures.rss_after_load_mb, samples))


def benchmark(
    runner: Runner, runs: int = 100, warmup: int = 10, on_progress: Callable[[int], None] | None = None
) -> BenchResult:
    """Time ``runs`` single-batch inferences after ``warmup`` untimed ones."""
    check_run_counts(runs, warmup)
    rss_after_load = rss_mb()
    tensor = runner.io.input.feed(synthetic_images(runner.io.preprocessing, runner.batch_size or 1))
    for _ in range(warmup):
        runner.infer(tensor)
    times = np.empty(runs, dtype=np.float64)
    for i in range(runs):
        t0 = time.perf_counter_ns()
        runner.infer(tensor)
        times[i] = (time.perf_counter_ns() - t0) / 1e6
        if on_progress:
            on_progress(1)
    latency = latency_stats(times)
    batch = tensor.shape[0]
    return BenchResult(
        latency_ms=latency,
        runs=runs,
        warmup=warmup,
        throughput_ips=round(1000.0 * batch / latency["mean"], 2),
        peak_rss_mb=round(_peak_rss_mb(), 1),
        rss_after_load_mb=round(rss_after_load, 1) if rss_after_load is not None else None,
        samples_ms=[round(float(t), 4) for t in times],
    )


def host_step_latency(model: str, options: LoadOptions, runs: int, model_p50_ms: float) -> dict[str, object] | None:
    """The host's share of a model's latency: its task's host step (a detector's box decoding and NMS) timed on
    the model's own raw outputs, ``runs`` times after one warm-up; None for a model without one (read from its
    manifest or its family, without loading it)."""
    from edgedeploy.core.manifest import read_manifest
    from edgedeploy.models import WEIGHT_NAMES, model_task
    from edgedeploy.runtimes import load_runner
    from edgedeploy.tasks import get_task

    path = Path(model)
    manifest = read_manifest(path) if model not in WEIGHT_NAMES and path.is_file() else None
    task = manifest.io.task if manifest else model_task(options.architecture.config()) if model in WEIGHT_NAMES \
        else None
    if task is None or (manifest is not None and get_task(task).host_step(manifest.io) is None):
        return None
    runner = load_runner(model, options)
    step = get_task(runner.io.task).host_step(runner.io)
    if step is None:
        return None
    raw = runner.infer(runner.io.input.feed(synthetic_images(runner.io.preprocessing, runner.batch_size or 1)))
    step(raw)
    times = np.empty(runs, dtype=np.float64)
    for i in range(runs):
        t0 = time.perf_counter_ns()
        step(raw)
        times[i] = (time.perf_counter_ns() - t0) / 1e6
    latency = latency_stats(times)
    return {"where": "host (this process)", "latency_ms": {k: latency[k] for k in ("p50", "p90", "mean")},
            "share_of_p50": round(latency["p50"] / (latency["p50"] + model_p50_ms), 4)}
