"""The ``local`` transport: this host, in this process (its CPU, or its GPU through ONNX Runtime's
CUDA/TensorRT providers and OpenVINO's GPU plugin)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from typing import Any

from edgedeploy.devices.driver import BenchRequest, DeviceDriver, NothingToSetUp, Reachability, StepCallback
from edgedeploy.devices.latency import InProcessFigures, LatencyResult, LatencyStats
from edgedeploy.runtimes import load_runner
from edgedeploy.runtimes.base import LoadOptions, Runner

__all__ = ["LocalDriver", "gpu_status"]


def gpu_status() -> Reachability:
    """What this host offers for --device gpu: ONNX Runtime GPU providers, OpenVINO GPU plugin."""
    import onnxruntime as ort

    from edgedeploy.runtimes.onnxruntime.runner import GPU_PROVIDERS

    found, missing = [], []
    providers = [p for p in GPU_PROVIDERS if p in ort.get_available_providers()]
    (found if providers else missing).append(
        f"onnxruntime: {', '.join(providers)}" if providers else "onnxruntime has no CUDA/TensorRT provider")
    try:
        import openvino as ov

        gpus = [d for d in ov.Core().available_devices if d.split(".")[0] == "GPU"]
        (found if gpus else missing).append(f"OpenVINO: {', '.join(gpus)}" if gpus else "OpenVINO sees no GPU")
    except ImportError:
        missing.append("OpenVINO not installed")
    if shutil.which("nvidia-smi") is None:
        missing.append("no NVIDIA driver (nvidia-smi not found)")
    if found:
        return Reachability(True, "; ".join(found))
    return Reachability(False, "no GPU: " + "; ".join(missing))


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
