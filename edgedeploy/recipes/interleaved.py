"""Latency of a recipe's targets in interleaved rounds on one device.

A shared CPU drifts: another job starts, the clock throttles. Timing an int8 model and then, a
minute later, its float counterpart puts that drift into their ratio. Here every target is timed in
``rounds`` short rounds, round-robin over the targets, the order reversed every other round
(A B, B A, ...), so a drift weighs on every target alike and the int8/fp32 ratio stays put. The
rounds of one target are merged into one result with every timed run.

Only devices measured in this process can be merged (their results carry every timed run); a
remote device's tool reports summary statistics, so it is benched in one round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from edgedeploy.devices import Device, LatencyResult, driver_for
from edgedeploy.measure.bench import merge_rounds
from edgedeploy.measure.on_device import bench_on_device
from edgedeploy.runtimes import LoadOptions

__all__ = ["BenchJob", "bench_interleaved", "split_runs"]


@dataclass(frozen=True)
class BenchJob:
    name: str
    model: str
    options: LoadOptions


def split_runs(runs: int, rounds: int) -> list[int]:
    """``runs`` timed runs over at most ``rounds`` rounds, as evenly as they go (no empty round)."""
    rounds = max(1, min(rounds, runs))
    return [runs // rounds + (i < runs % rounds) for i in range(rounds)]


def bench_interleaved(
    jobs: list[BenchJob], device: Device, runs: int, warmup: int, rounds: int, threads: int | None,
    progress: Callable[[str, str], None],
) -> dict[str, LatencyResult | Exception]:
    """Each job's latency on ``device`` with ``threads`` (None: the device's default), or the
    exception that stopped it (the others go on)."""
    sizes = split_runs(runs, rounds if driver_for(device).in_process else 1)
    measured: dict[str, list[LatencyResult]] = {job.name: [] for job in jobs}
    failed: dict[str, Exception] = {}
    for index, size in enumerate(sizes):
        order = jobs if index % 2 == 0 else jobs[::-1]
        for job in order:
            if job.name in failed:
                continue
            progress(job.name, f"{device.name}, round {index + 1}/{len(sizes)}" if len(sizes) > 1 else device.name)
            options = replace(job.options, threads=threads or device.default_threads())
            try:
                measured[job.name].append(bench_on_device(job.model, device, options, size, warmup))
            except Exception as exc:  # noqa: BLE001 - one target's failure must not cost the others their results
                failed[job.name] = exc
    return {job.name: failed.get(job.name) or merge_rounds(measured[job.name]) for job in jobs}
