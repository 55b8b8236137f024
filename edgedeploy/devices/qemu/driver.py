"""The ``qemu`` transport's DeviceDriver: set-up builds the root, eval and bench run in it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from edgedeploy.devices.driver import BenchRequest, DeviceDriver, Reachability, StepCallback
from edgedeploy.devices.latency import LatencyResult
from edgedeploy.devices.qemu.guest import emulator_status
from edgedeploy.devices.qemu.rootfs import build_rootfs
from edgedeploy.devices.qemu.runner import EmulatedLiteRTRunner, emulated_benchmark
from edgedeploy.runtimes.base import LoadOptions, Runner

__all__ = ["QemuDriver"]


class QemuDriver(DeviceDriver):
    def probe(self) -> Reachability:
        return emulator_status()

    def setup(self, on_step: StepCallback) -> dict[str, Any]:
        return build_rootfs(on_step)

    def eval_runner(self, model: str, options: LoadOptions) -> Runner:
        return EmulatedLiteRTRunner(model, options)

    def bench(self, model: str, options: LoadOptions, request: BenchRequest) -> LatencyResult:
        # XNNPACK unless the builtin kernels were asked for (--delegate cpu).
        return emulated_benchmark(Path(model), replace(options, xnnpack=request.delegate != "cpu"), request.runs,
                                  request.warmup)
