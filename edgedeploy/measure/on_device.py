"""Running a model on a device: in this process (cpu, gpu), emulated (arm64-emu) or remote (adb, ssh).

The one place that knows which device runs which runtime and how; `bench` and
`run` both come through here.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from edgedeploy.backends import LoadOptions, Runner, load_runner, runtime_for
from edgedeploy.core.errors import ConfigError
from edgedeploy.devices import Device
from edgedeploy.measure.bench import benchmark, check_run_counts

__all__ = ["bench_on_device", "check_device_runs", "eval_runner"]


def check_device_runs(device: Device, model: str, delegate: str | None) -> str:
    """The model's runtime, if ``device`` runs it with ``delegate``; else a ConfigError saying what it offers."""
    runtime = runtime_for(model).name
    if runtime not in device.runtimes:
        hint = " (TFLite's GPU delegate runs on phones: --device pixel --delegate gpu)" if runtime == "litert" else ""
        raise ConfigError(f"device {device.name} does not run {runtime} models; it runs {', '.join(device.runtimes)}{hint}")
    if delegate is not None and delegate not in device.delegates:
        offered = ", ".join(device.delegates) or "none"
        raise ConfigError(f"device {device.name} does not offer the {delegate} delegate (it offers: {offered})")
    return runtime


def eval_runner(model: str, device: Device, options: LoadOptions) -> Runner:
    """A runner whose predictions come from ``device``: in-process, or LiteRT's aarch64 build under qemu."""
    check_device_runs(device, model, None)
    if device.in_process:
        return load_runner(model, replace(options, accelerator=device.accelerator))
    if device.transport == "qemu":
        from edgedeploy.devices.emulator import EmulatedLiteRTRunner

        return EmulatedLiteRTRunner(model, options)
    raise ConfigError(f"eval runs in-process or emulated; on {device.name} only latency is measured (bench)")


def bench_on_device(
    model: str, device: Device, options: LoadOptions, runs: int, warmup: int, delegate: str | None = None,
    benchmark_binary: Path | None = None, op_profiling: bool = False, on_progress: Any = None,
) -> dict[str, Any]:
    """Timings and how the model really ran; ``options.threads`` is used as given."""
    check_run_counts(runs, warmup)
    check_device_runs(device, model, delegate)
    if device.in_process:
        if delegate == "cpu":
            options = replace(options, xnnpack=False)
        runner = load_runner(model, replace(options, accelerator=device.accelerator))
        result = benchmark(runner, runs, warmup, on_progress=on_progress)
        return {"tool": "edgedeploy", **result.to_dict(samples=True), "threads": options.threads,
                "execution": runner.execution(), "versions": runner.versions(), "model_size_bytes": runner.size_bytes}
    if device.transport == "qemu":
        from edgedeploy.devices.emulator import emulated_benchmark

        return emulated_benchmark(Path(model), replace(options, xnnpack=delegate != "cpu"), runs, warmup)
    from edgedeploy.devices.remote import benchmark_binary as find_binary
    from edgedeploy.devices.remote import connect, remote_benchmark

    if not Path(model).is_file():
        raise ConfigError(f"{model}: a model file is needed on a remote device")
    binary = find_binary(device, benchmark_binary)
    transport = connect(device)
    return {**remote_benchmark(device, transport, Path(model), binary, options.threads, delegate or "xnnpack",
                               runs, warmup, op_profiling),
            "device_info": transport.describe(), "model_size_bytes": Path(model).stat().st_size}
