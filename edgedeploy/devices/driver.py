"""The one interface every transport implements: how edgedeploy reaches a device, prepares it,
runs a model there for accuracy, and measures latency there.

One :class:`DeviceDriver` subclass per transport (``local``, ``qemu``, ``adb``, ``ssh``),
listed in ``registry.TRANSPORTS``; a device profile names its transport, and
``registry.driver_for(device)`` gives the driver that serves it. Nothing else in
edgedeploy looks at ``device.transport``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from edgedeploy.core.errors import ConfigError
from edgedeploy.devices.device import Device
from edgedeploy.devices.latency import LatencyResult
from edgedeploy.runtimes.base import LoadOptions, Runner

__all__ = ["DeviceDriver", "Reachability", "BenchRequest", "RunnerTimer", "TimedRuns", "NothingToSetUp",
           "StepCallback"]

StepCallback = Callable[[str], None]


@dataclass(frozen=True)
class Reachability:
    reachable: bool
    detail: str


class NothingToSetUp(ConfigError):
    """``devices setup`` on a device that needs none (it runs in this process)."""


class TimedRuns(Protocol):
    """What an in-process timing loop measured (``measure.bench.BenchResult`` is one)."""

    latency_ms: dict[str, float]
    runs: int
    warmup: int
    throughput_ips: float
    peak_rss_mb: float
    rss_after_load_mb: float | None
    samples_ms: list[float]


class RunnerTimer(Protocol):
    """Times a loaded runner in this process (``measure.bench.benchmark``)."""

    def __call__(self, runner: Runner, runs: int = ..., warmup: int = ...,
                 on_progress: Callable[[int], None] | None = ...) -> TimedRuns: ...


@dataclass(frozen=True)
class BenchRequest:
    """One latency measurement, as `bench` and recipes ask for it."""

    runs: int
    warmup: int
    # The in-process timing loop. It lives in edgedeploy.measure, a layer above devices, so
    # the caller hands it in; drivers that time elsewhere (a guest, a device) ignore it.
    time_runner: RunnerTimer
    # LiteRT delegate; None: the device's default (XNNPACK).
    delegate: str | None = None
    # Remote devices: LiteRT's benchmark_model binary; None: the cached download.
    benchmark_binary: Path | None = None
    op_profiling: bool = False
    # Called with 1 after each timed run (a progress bar), where runs are timed in this process.
    on_progress: Callable[[int], None] | None = None


class DeviceDriver(ABC):
    """How one transport serves a device profile. Constructing one contacts nothing."""

    # Runs models in this process: `bench` shows a progress bar and describes this host.
    in_process: ClassVar[bool] = False

    def __init__(self, device: Device):
        self.device = device

    @abstractmethod
    def probe(self) -> Reachability:
        """Is the device usable now, and if not why not: cheap checks, no hang, never raises
        for a device that is merely absent (that is ``Reachability(False, why)``)."""

    @abstractmethod
    def setup(self, on_step: StepCallback) -> dict[str, Any]:
        """Prepare the device once (downloads, a root file system); returns what
        `edgedeploy devices setup NAME` prints. Raises NothingToSetUp where there is nothing to do."""

    @abstractmethod
    def eval_runner(self, model: str, options: LoadOptions) -> Runner:
        """A runner whose predictions come from the device (for `eval`); a ConfigError where
        the device only measures latency."""

    @abstractmethod
    def bench(self, model: str, options: LoadOptions, request: BenchRequest) -> LatencyResult:
        """Latency of ``model`` there, ``options.threads`` used as given."""
