"""Latency on a remote device (Android over adb, a Linux board over ssh) with LiteRT's benchmark_model.

The model and the benchmark_model binary are pushed into a fresh folder on the
device, the tool runs there with the requested threads and delegate, its output is
parsed, and the folder is removed whatever happened. A delegate that took only part
of the graph is reported with the nodes that fell back; one that took none of it is
an error, because the figure would be a CPU figure under a GPU/NNAPI label.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

from edgedeploy.core.cache import cache_dir
from edgedeploy.core.errors import ConfigError, DependencyError, ValidationError
from edgedeploy.core.hashing import sha256_file
from edgedeploy.devices import Device
from edgedeploy.devices.benchmark_model import BenchmarkModelRun, benchmark_args, parse_output
from edgedeploy.devices.transports import AdbTransport, DeviceUnavailable, SshTransport, Transport

__all__ = ["remote_benchmark", "connect", "benchmark_binary", "download_benchmark_binary", "BINARY_URLS"]

log = logging.getLogger(__name__)

# Where Google publishes prebuilt benchmark_model binaries (LiteRT's measurement docs); no checksums are published.
BINARY_URLS = {
    "arm64-v8a": "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/"
                 "nightly/latest/android_aarch64_benchmark_model",
    "aarch64": "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/"
               "nightly/latest/linux_aarch64_benchmark_model",
}
RUN_TIMEOUT_S = 600.0


def connect(device: Device) -> Transport:
    if device.transport == "adb":
        return AdbTransport.connect(device.model)
    if device.transport == "ssh":
        if not device.host:
            raise ConfigError(f"device {device.name} has no host: set host: in its profile")
        return SshTransport(device.host)
    raise ConfigError(f"device {device.name} is not a remote device (transport {device.transport})")


def _cached_binary(abi: str) -> Path:
    return cache_dir("tools") / f"{abi}_benchmark_model"


def benchmark_binary(device: Device, given: Path | None) -> Path:
    """The benchmark_model binary for the device's ABI: the one given, else the cached download."""
    path = given or _cached_binary(device.abi)
    if not path.is_file():
        if given is not None:
            raise DependencyError(f"{given}: benchmark_model binary not found")
        raise DependencyError(f"no benchmark_model for {device.abi}: pass --benchmark-binary PATH, or run "
                              f"`edgedeploy devices setup {device.name}` to download Google's prebuilt one")
    return path


def download_benchmark_binary(device: Device) -> Path:
    """Fetch Google's prebuilt benchmark_model for the device's ABI into the cache (atomically)."""
    import urllib.request

    from edgedeploy.core.artifacts import atomic_path

    url = BINARY_URLS.get(device.abi)
    if url is None:
        raise ConfigError(f"no prebuilt benchmark_model is published for ABI {device.abi}")
    target = _cached_binary(device.abi)
    try:
        with atomic_path(target) as tmp, urllib.request.urlopen(url, timeout=120) as response:
            tmp.write_bytes(response.read())
    except OSError as exc:
        raise DependencyError(f"cannot download benchmark_model from {url} ({exc.__class__.__name__}); "
                              "offline, download it elsewhere and pass --benchmark-binary PATH") from None
    target.chmod(0o755)
    return target


def _check_delegate(run: BenchmarkModelRun, delegate: str, device: Device) -> dict[str, Any]:
    """The delegate's real coverage; an error if it took none of the graph."""
    report = run.delegate(delegate)
    if delegate == "cpu" or report is None:
        return {"requested": delegate, "status": "n/a" if delegate == "cpu" else "unknown"}
    coverage = {"requested": delegate, **{k: v for k, v in report.__dict__.items() if k != "delegate"},
                "cpu_ops": sorted({op.node_type for op in run.cpu_fallback_ops()})}
    if report.status == "none":
        raise ValidationError(f"the {delegate} delegate was requested on {device.name} but took none of the graph: "
                              "the whole model ran on the CPU (no latency reported under a false label)")
    if report.status == "partial":
        taken = (f"{report.nodes_delegated} of {report.nodes_total} nodes" if report.nodes_total
                 else f"{report.kernels} delegate kernels")
        log.warning("%s delegate took only %s on %s; the rest ran on the CPU%s", delegate, taken, device.name,
                    f" ({', '.join(coverage['cpu_ops'])})" if coverage["cpu_ops"] else "")
    return coverage


def remote_benchmark(
    device: Device, transport: Transport, model: Path, binary: Path, threads: int, delegate: str,
    runs: int, warmup: int, op_profiling: bool = False,
) -> dict[str, Any]:
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
        raise ValidationError(f"benchmark_model failed on {device.name} (exit {result.returncode}): {detail[:300]}")
    coverage = _check_delegate(run, delegate, device)
    stats = run.stats_ms
    return {
        "tool": "benchmark_model",
        "tool_sha256": sha256_file(binary),
        # benchmark_model's median is reported as p50 too, so tables and gates read one key.
        "latency_ms": {"p50": stats.get("median"), "mean": run.inference_avg_ms, "median": stats.get("median"), "std": stats.get("std"),
                       "min": stats.get("min"), "max": stats.get("max"), "p5": stats.get("p5"), "p95": stats.get("p95")},
        "runs": run.runs,
        "init_ms": run.init_ms,
        "first_inference_ms": run.first_inference_ms,
        "warmup_avg_ms": run.warmup_avg_ms,
        "memory_mb": {"init": run.memory_init_mb, "overall": run.memory_overall_mb, "peak": run.peak_memory_mb},
        "delegate": coverage,
        "ops": [op.__dict__ for op in run.ops] if op_profiling else None,
        "threads": threads,
    }


def _checked(transport: Transport, argv: list[str]) -> None:
    result = transport.shell(argv, 60.0)
    if result.returncode != 0:
        raise DeviceUnavailable(f"`{' '.join(argv)}` failed on {transport.name}: "
                                f"{(result.stderr or result.stdout).strip()[:200]}")
