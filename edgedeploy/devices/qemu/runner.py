"""Models run inside the arm64-emu root: LiteRT's aarch64 build under qemu, through ``arm64_guest.py``."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import ConfigError, RemoteRunError
from edgedeploy.data.synthetic import synthetic_images
from edgedeploy.devices.latency import EmulationFigures, LatencyResult, LatencyStats
from edgedeploy.devices.qemu.guest import QEMU_CPU, root_info, run_guest_python
from edgedeploy.runtimes.base import LoadOptions, Runner

__all__ = ["EmulatedLiteRTRunner", "emulated_benchmark", "GUEST_SCRIPT"]

GUEST_SCRIPT = Path(__file__).with_name("arm64_guest.py")


def _run_model(model: Path, tensors: np.ndarray, threads: int, xnnpack: bool, warmup: int = 0,
               runs: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Each tensor invoked once in the guest (raw outputs), then ``runs`` timed invokes of the first."""
    with tempfile.TemporaryDirectory(prefix="edgedeploy-arm64-") as tmp:
        inputs, outputs = Path(tmp) / "in.npy", Path(tmp) / "out.npy"
        np.save(inputs, tensors)
        args = [str(GUEST_SCRIPT), str(Path(model).resolve()), str(inputs), str(outputs), "--threads", str(threads),
                "--warmup", str(warmup), "--runs", str(runs), *([] if xnnpack else ["--no-xnnpack"])]
        # About 0.45 s per MobileNetV2 inference under emulation, plus 2 s to start.
        result = run_guest_python(args, 60 + 5 * (len(tensors) + warmup + runs))
        if result.returncode != 0:
            raise RemoteRunError(f"the emulated LiteRT run failed (exit {result.returncode}): "
                                 f"{(result.stderr.strip().splitlines() or ['no output'])[-1][:300]}")
        try:
            return np.load(outputs), json.loads(result.stdout.strip().splitlines()[-1])
        except (OSError, ValueError, IndexError) as exc:  # exit 0 but no outputs or no JSON line
            raise RemoteRunError(f"the emulated LiteRT run gave no result ({exc.__class__.__name__}): "
                                 f"{result.stdout.strip()[-200:] or 'no output'}") from exc


class EmulatedLiteRTRunner(Runner):
    """A .tflite run by LiteRT's aarch64 build under qemu; IO spec from the host's view of the same file."""

    runtime = "litert"

    def __init__(self, source: str, options: LoadOptions):
        from edgedeploy.runtimes.litert.runner import LiteRTRunner

        host = LiteRTRunner(source, options)
        if host.io.more_outputs:
            raise ConfigError(f"{source}: the emulated arm64 runner reads one output; this model has "
                              f"{len(host.io.outputs)} ({', '.join(host.io.output_names)})")
        self.source, self.io, self.batch_size = source, host.io, host.batch_size
        self.threads, self.xnnpack = options.threads, options.xnnpack

    def infer(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        return {self.io.output.name: self.infer_many(tensor[None])[0]}

    def infer_many(self, tensors: np.ndarray) -> np.ndarray:
        outputs, _ = _run_model(Path(self.source), tensors, self.threads, self.xnnpack)
        return outputs

    def predict(self, images_hwc: np.ndarray) -> np.ndarray:
        # One emulated process per batch: start-up (2 s) is paid once, not per image.
        step = self.batch_size or len(images_hwc)
        tensors = np.stack([self.io.input.feed(images_hwc[i:i + step]) for i in range(0, len(images_hwc), step)])
        return np.concatenate([self.io.output.read(raw) for raw in self.infer_many(tensors)])

    def versions(self) -> dict[str, str]:
        return {"ai-edge-litert": f"{root_info()['litert']} (aarch64)", "qemu": QEMU_CPU}

    def execution(self) -> dict[str, Any]:
        return {"device": f"qemu-aarch64 {QEMU_CPU}", "emulated": True,
                "delegate": "XNNPACK" if self.xnnpack else "none (builtin kernels)"}


def emulated_benchmark(model: Path, options: LoadOptions, runs: int, warmup: int) -> LatencyResult:
    """Per-invoke times under emulation: flagged as emulated, they are not device latency."""
    runner = EmulatedLiteRTRunner(str(model), options)
    tensor = runner.io.input.feed(synthetic_images(runner.io.preprocessing, 1))
    _, timing = _run_model(Path(model), tensor[None], options.threads, options.xnnpack, warmup, runs)
    times = np.array(timing["invoke_s"]) * 1000.0
    latency = LatencyStats.from_dict({"p50": float(np.percentile(times, 50)), "p90": float(np.percentile(times, 90)),
                                      "mean": float(times.mean()), "min": float(times.min()),
                                      "max": float(times.max())})
    return LatencyResult(
        tool="edgedeploy (qemu)", threads=options.threads, runs=runs, warmup=warmup, latency_ms=latency,
        emulation=EmulationFigures(load_ms=timing["load_s"] * 1000.0, machine=timing["machine"]),
        execution=runner.execution(), versions=runner.versions(), model_size_bytes=Path(model).stat().st_size)
