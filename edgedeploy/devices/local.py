"""The ``local`` transport: this host, in this process (its CPU, or its GPU through LiteRT's GPU accelerator,
ONNX Runtime's CUDA/TensorRT or WebGPU providers and OpenVINO's GPU plugin)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from edgedeploy.devices.driver import BenchRequest, DeviceDriver, NothingToSetUp, Reachability, StepCallback
from edgedeploy.devices.latency import InProcessFigures, LatencyResult, LatencyStats
from edgedeploy.runtimes import gpu_accelerators, load_runner
from edgedeploy.runtimes.base import LoadOptions, Runner

__all__ = ["LocalDriver", "gpu_status"]


def gpu_status() -> Reachability:
    """What this host offers for --device gpu: every runtime's GPU accelerators (runtimes.gpu_accelerators)."""
    rows = gpu_accelerators()
    usable = [f"{r.accelerator}: {r.detail}" for r in rows if r.usable]
    if usable:
        return Reachability(True, "; ".join(usable))
    return Reachability(False, "no GPU: " + "; ".join(f"{r.accelerator}: {r.detail}" for r in rows))


class LocalDriver(DeviceDriver):
    in_process = True

    def probe(self) -> Reachability:
        if self.device.accelerator == "gpu":
            return gpu_status()
        return Reachability(True, self.device.describe_host())

    def setup(self, on_step: StepCallback) -> dict[str, Any]:
        raise NothingToSetUp(f"device {self.device.name} runs in this process: nothing to set up")

    def eval_runner(self, model: str, options: LoadOptions) -> Runner:
        return load_runner(model, replace(options, accelerator=self.device.accelerator))

    def bench(self, model: str, options: LoadOptions, request: BenchRequest) -> LatencyResult:
        if request.delegate == "cpu":  # LiteRT's builtin kernels, without XNNPACK
            options = replace(options, xnnpack=False)
        runner = self.eval_runner(model, options)
        timed = request.time_runner(runner, request.runs, request.warmup, on_progress=request.on_progress)
        return LatencyResult(
            tool="edgedeploy", threads=options.threads, runs=timed.runs, warmup=timed.warmup,
            latency_ms=LatencyStats.from_dict(timed.latency_ms),
            in_process=InProcessFigures(timed.throughput_ips, timed.peak_rss_mb, timed.rss_after_load_mb,
                                        timed.samples_ms),
            execution=runner.execution(), versions=runner.versions(), model_size_bytes=runner.size_bytes)
