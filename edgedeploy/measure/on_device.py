"""Running a model on a device: the checks every device shares, then the device's own driver
(in this process, emulated, or remote: ``edgedeploy.devices.registry``). `bench`, `eval` and
recipes all come through here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgedeploy.core.errors import ConfigError
from edgedeploy.devices import BenchRequest, Device, LatencyResult, driver_for
from edgedeploy.measure.bench import benchmark, check_run_counts
from edgedeploy.runtimes import LoadOptions, Runner, check_model_files, runtime_for

__all__ = ["bench_on_device", "check_device_runs", "eval_runner"]


def check_device_runs(device: Device, model: str, delegate: str | None) -> str:
    """The model's runtime, if ``device`` runs it with ``delegate``; else a ConfigError saying what it offers."""
    runtime = runtime_for(model).name
    if not device.runs(runtime):
        hint = (" (LiteRT's GPU accelerator: --device gpu; a phone's GPU delegate: --device pixel --delegate gpu)"
                if runtime == "litert" else "")
        raise ConfigError(f"device {device.name} does not run {runtime} models; it runs {', '.join(device.runtime_names)}{hint}")
    if delegate is not None and delegate not in device.delegates:
        offered = ", ".join(device.delegates) or "none"
        raise ConfigError(f"device {device.name} does not offer the {delegate} delegate (it offers: {offered})")
    return runtime


def eval_runner(model: str, device: Device, options: LoadOptions) -> Runner:
    """A runner whose predictions come from ``device`` (in-process, or LiteRT's aarch64 build under qemu)."""
    check_device_runs(device, model, None)
    runner = driver_for(device).eval_runner(model, options)
    if runner.verification is None:
        # Runners that did not load through runtimes.load_runner (emulated, a plugin's) are
        # checked here, before any inference: no device computes with a changed file.
        runner.verification = check_model_files(model, options.verify)
    return runner


def bench_on_device(
    model: str, device: Device, options: LoadOptions, runs: int, warmup: int, delegate: str | None = None,
    benchmark_binary: Path | None = None, op_profiling: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> LatencyResult:
    """Timings and how the model really ran; ``options.threads`` is used as given."""
    check_run_counts(runs, warmup)
    check_device_runs(device, model, delegate)
    check_model_files(model, options.verify)  # before anything is pushed to a device
    request = BenchRequest(runs=runs, warmup=warmup, time_runner=benchmark, delegate=delegate,
                           benchmark_binary=benchmark_binary, op_profiling=op_profiling, on_progress=on_progress)
    return driver_for(device).bench(model, options, request)
