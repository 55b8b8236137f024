"""Latency on a remote device (Android over adb, a Linux board over ssh) with LiteRT's benchmark_model.

The model and the benchmark_model binary are pushed into a fresh folder on the
device, the tool runs there with the requested threads and delegate, its output is
parsed, and the folder is removed whatever happened. A delegate that took only part
of the graph is reported with the nodes that fell back; one that took none of it is
an error, because the figure would be a CPU figure under a GPU/NNAPI label.

:class:`RemoteDriver` is what the adb and ssh transports share; each adds how to
connect and how to describe the device it reached.
"""

from __future__ import annotations

import logging
import uuid
from abc import abstractmethod
from pathlib import Path
from typing import Any

from edgedeploy.core.errors import ConfigError, EdgeDeployError, RemoteRunError
from edgedeploy.core.hashing import sha256_file
from edgedeploy.devices.benchmark_binary import benchmark_binary, download_benchmark_binary
from edgedeploy.devices.benchmark_model import BenchmarkModelRun, benchmark_args, parse_output
from edgedeploy.devices.device import Device
from edgedeploy.devices.driver import BenchRequest, DeviceDriver, Reachability, StepCallback
from edgedeploy.devices.latency import (
    BenchmarkModelFigures,
    DelegateCoverage,
    LatencyResult,
    LatencyStats,
    MemoryFootprint,
)
from edgedeploy.devices.transports import DeviceUnavailable, Transport
from edgedeploy.runtimes.base import LoadOptions, Runner

__all__ = ["RemoteDriver", "remote_benchmark", "RUN_TIMEOUT_S"]

log = logging.getLogger(__name__)

RUN_TIMEOUT_S = 600.0


class RemoteDriver(DeviceDriver):
    """A device reached over a :class:`Transport`: latency only, measured by benchmark_model there."""

    @abstractmethod
    def connect(self) -> Transport:
        """The transport to the device (raises DeviceUnavailable if it is not there)."""

    @abstractmethod
    def summary(self, info: dict[str, str | None]) -> str:
        """One line for `edgedeploy devices`, from what ``Transport.describe()`` returned."""

    def probe(self) -> Reachability:
        try:
            return Reachability(True, self.summary(self.connect().describe()))
        except EdgeDeployError as exc:  # no tool, no device, no host: the reason it is unreachable
            return Reachability(False, str(exc))

    def setup(self, on_step: StepCallback) -> dict[str, Any]:
        return {"benchmark_model": str(download_benchmark_binary(self.device))}

    def eval_runner(self, model: str, options: LoadOptions) -> Runner:
        raise ConfigError(f"eval runs in-process or emulated; on {self.device.name} only latency is measured (bench)")

    def bench(self, model: str, options: LoadOptions, request: BenchRequest) -> LatencyResult:
        path = Path(model)
        if not path.is_file():
            raise ConfigError(f"{model}: a model file is needed on a remote device")
        binary = benchmark_binary(self.device, request.benchmark_binary)
        return remote_benchmark(self.device, self.connect(), path, binary, options.threads,
                                request.delegate or "xnnpack", request.runs, request.warmup, request.op_profiling)


def _check_delegate(run: BenchmarkModelRun, delegate: str, device: Device) -> DelegateCoverage:
    """The delegate's real coverage; an error if it took none of the graph."""
    report = run.delegate(delegate)
    if delegate == "cpu" or report is None:
        return DelegateCoverage(delegate, "n/a" if delegate == "cpu" else "unknown")
    coverage = DelegateCoverage(delegate, report.status, report.nodes_delegated, report.nodes_total,
                                report.partitions, report.kernels,
                                cpu_ops=sorted({op.node_type for op in run.cpu_fallback_ops()}))
    if report.status == "none":
        raise RemoteRunError(f"the {delegate} delegate was requested on {device.name} but took none of the graph: "
                             "the whole model ran on the CPU (no latency reported under a false label)")
    if report.status == "partial":
        taken = (f"{report.nodes_delegated} of {report.nodes_total} nodes" if report.nodes_total
                 else f"{report.kernels} delegate kernels")
        log.warning("%s delegate took only %s on %s; the rest ran on the CPU%s", delegate, taken, device.name,
                    f" ({', '.join(coverage.cpu_ops or [])})" if coverage.cpu_ops else "")
    return coverage


def remote_benchmark(
    device: Device, transport: Transport, model: Path, binary: Path, threads: int, delegate: str,
    runs: int, warmup: int, op_profiling: bool = False,
) -> LatencyResult:
    """benchmark_model on the device: timings in ms, memory in MiB, delegate coverage, op profile."""
    if delegate not in device.delegates:
        raise ConfigError(f"device {device.name} offers delegates {', '.join(device.delegates)}, not {delegate}")
    workdir = f"{transport.tmp_root}/edgedeploy-{uuid.uuid4().hex[:12]}"
    try:
        _checked(transport, ["mkdir", "-p", workdir])
        transport.push(binary, f"{workdir}/benchmark_model")
        _checked(transport, ["chmod", "755", f"{workdir}/benchmark_model"])
        transport.push(model, f"{workdir}/{model.name}")
        args = benchmark_args(f"{workdir}/{model.name}", threads, delegate, runs, warmup, op_profiling)
        result = transport.shell([f"{workdir}/benchmark_model", *args], RUN_TIMEOUT_S)
    finally:
        try:  # a failed clean-up must not hide the run's own result or error
            cleanup = transport.shell(["rm", "-rf", workdir], 60.0)
            if cleanup.returncode != 0:
                log.warning("could not remove %s on %s: %s", workdir, transport.name, cleanup.stderr.strip()[:200])
        except DeviceUnavailable as exc:
            log.warning("could not remove %s on %s: %s", workdir, transport.name, exc)
    run = parse_output(result.stdout + "\n" + result.stderr, requested=delegate)
    if result.returncode != 0 or run.inference_avg_ms is None:
        detail = "; ".join(run.errors) or (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RemoteRunError(f"benchmark_model failed on {device.name} (exit {result.returncode}): {detail[:300]}")
    coverage = _check_delegate(run, delegate, device)
    stats = run.stats_ms
    # benchmark_model's median is reported as p50 too, so tables and gates read one key.
    latency = LatencyStats.from_dict({
        "p50": stats.get("median"), "mean": run.inference_avg_ms, "median": stats.get("median"),
        "std": stats.get("std"), "min": stats.get("min"), "max": stats.get("max"), "p5": stats.get("p5"),
        "p95": stats.get("p95")})
    return LatencyResult(
        tool="benchmark_model", threads=threads, runs=run.runs, latency_ms=latency,
        model_size_bytes=model.stat().st_size,
        benchmark_model=BenchmarkModelFigures(
            tool_sha256=sha256_file(binary), init_ms=run.init_ms, first_inference_ms=run.first_inference_ms,
            warmup_avg_ms=run.warmup_avg_ms,
            memory_mb=MemoryFootprint(run.memory_init_mb, run.memory_overall_mb, run.peak_memory_mb),
            delegate=coverage, ops=[op.__dict__ for op in run.ops] if op_profiling else None,
            device_info=transport.describe()))


def _checked(transport: Transport, argv: list[str]) -> None:
    result = transport.shell(argv, 60.0)
    if result.returncode != 0:
        raise DeviceUnavailable(f"`{' '.join(argv)}` failed on {transport.name}: "
                                f"{(result.stderr or result.stdout).strip()[:200]}")
