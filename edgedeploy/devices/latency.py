"""One latency result for every way edgedeploy measures latency on a device.

Three tools measure today, and each reports its own figures:

- edgedeploy's own timing loop in this process (cpu, gpu): percentiles, throughput, memory,
  every timed run (``InProcessFigures``);
- the same loop inside the arm64 emulator: flagged ``emulated``, never device latency
  (``EmulationFigures``);
- LiteRT's ``benchmark_model`` on a phone or a board: its statistics, start-up times,
  memory and the delegate's real coverage (``BenchmarkModelFigures``).

``to_dict()`` is a public contract: it is what ``bench --json`` prints and what a
``results.json`` (``edgedeploy.results/1``) keeps under ``latency``, so each tool's keys,
their order and their values are exactly those it has always written. ``from_dict()``
reads such an entry back (older files lack a few keys: those come back as None).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["LatencyResult", "LatencyStats", "InProcessFigures", "EmulationFigures", "BenchmarkModelFigures",
           "MemoryFootprint", "DelegateCoverage", "EMULATED_NOTE"]

EMULATED_NOTE = "emulated: not device latency"


@dataclass(frozen=True)
class LatencyStats:
    """Per-inference latency in ms. Each tool reports its own statistics (``reported``, in
    its order) and only those are written; a reported one may still be None (benchmark_model
    builds that print no percentiles have no median, p5 or p95)."""

    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    mean: float | None = None
    median: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    p5: float | None = None
    p95: float | None = None
    # Empty: every statistic that is not None, in field order.
    reported: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not self.reported:
            given = tuple(f.name for f in fields(self) if f.name != "reported" and getattr(self, f.name) is not None)
            object.__setattr__(self, "reported", given)
        unknown = set(self.reported) - set(_STAT_NAMES)
        if unknown:
            raise ValueError(f"unknown latency statistics: {', '.join(sorted(unknown))}")

    @classmethod
    def from_dict(cls, values: Mapping[str, float | None]) -> LatencyStats:
        """The statistics as a tool reported them: its keys, in its order."""
        unknown = set(values) - set(_STAT_NAMES)
        if unknown:
            raise ValueError(f"unknown latency statistics: {', '.join(sorted(unknown))}")
        return cls(**values, reported=tuple(values))

    def to_dict(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in self.reported}


_STAT_NAMES = tuple(f.name for f in fields(LatencyStats) if f.name != "reported")


@dataclass(frozen=True)
class InProcessFigures:
    """edgedeploy's timing loop in this process: what the loop adds to the statistics."""

    throughput_ips: float
    peak_rss_mb: float
    rss_after_load_mb: float | None
    # Every timed run, in order (distribution plots); `bench --json` leaves them out.
    samples_ms: list[float]


@dataclass(frozen=True)
class EmulationFigures:
    """The timing loop inside the arm64 emulator: correctness on ARM kernels, not device speed."""

    load_ms: float
    # What the emulated Python reported as its machine (aarch64).
    machine: str


@dataclass(frozen=True)
class MemoryFootprint:
    """benchmark_model's memory figures, MiB (None where the binary printed none)."""

    init: float | None = None
    overall: float | None = None
    peak: float | None = None


@dataclass(frozen=True)
class DelegateCoverage:
    """How much of the graph the requested delegate really took on the device."""

    requested: str
    # full | partial | unknown, or n/a for the plain CPU kernels (a delegate that took none is an error).
    status: str
    nodes_delegated: int | None = None
    nodes_total: int | None = None
    partitions: int | None = None
    kernels: int | None = None
    # Node types left on the CPU (empty without --op-profiling). None: benchmark_model said
    # nothing about the delegate, and only ``requested`` and ``status`` are written.
    cpu_ops: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.cpu_ops is None:
            return {"requested": self.requested, "status": self.status}
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DelegateCoverage:
        return cls(**data)


@dataclass(frozen=True)
class BenchmarkModelFigures:
    """What LiteRT's benchmark_model reported on a remote device, beyond the statistics."""

    tool_sha256: str
    init_ms: float | None
    first_inference_ms: float | None
    warmup_avg_ms: float | None
    memory_mb: MemoryFootprint
    delegate: DelegateCoverage
    # Per-op timings and where each op ran (--op-profiling); None when not asked for.
    ops: list[dict[str, Any]] | None
    # What the device said about itself (serial, model, SoC, OS; or host and ABI).
    device_info: dict[str, str | None]


@dataclass(frozen=True)
class LatencyResult:
    """Latency of one model on one device, whichever tool measured it.

    At most one of ``in_process``, ``emulation`` and ``benchmark_model`` is set, and it
    decides the JSON layout; a result with none of them (a plugin transport's) is written
    with the common keys only.
    """

    tool: str
    threads: int | None
    runs: int | None
    latency_ms: LatencyStats
    warmup: int | None = None
    # How the runtime executed the model (providers, delegate, precision) and the packages' versions.
    execution: dict[str, Any] | None = None
    versions: dict[str, str] | None = None
    model_size_bytes: int | None = None
    in_process: InProcessFigures | None = None
    emulation: EmulationFigures | None = None
    benchmark_model: BenchmarkModelFigures | None = None

    def __post_init__(self) -> None:
        shapes = [s for s in (self.in_process, self.emulation, self.benchmark_model) if s is not None]
        if len(shapes) > 1:
            raise ValueError("a latency result comes from one tool: set at most one of in_process, emulation, "
                             "benchmark_model")

    @property
    def emulated(self) -> bool:
        """Measured under emulation: not device latency (kept out of tables, flagged in JSON)."""
        return self.emulation is not None

    def to_dict(self, samples: bool = True) -> dict[str, Any]:
        """The JSON entry (``samples=False``: without every timed run, as `bench --json` prints it)."""
        latency = self.latency_ms.to_dict()
        if self.in_process is not None:
            figures = asdict(self.in_process)
            if not samples:
                del figures["samples_ms"]
            return {"tool": self.tool, "latency_ms": latency, "runs": self.runs, "warmup": self.warmup, **figures,
                    "threads": self.threads, "execution": self.execution, "versions": self.versions,
                    "model_size_bytes": self.model_size_bytes}
        if self.emulation is not None:
            return {"tool": self.tool, "emulated": True, "threads": self.threads, "runs": self.runs,
                    "warmup": self.warmup, "latency_ms": latency, "load_ms": self.emulation.load_ms,
                    "machine": self.emulation.machine, "execution": self.execution, "versions": self.versions,
                    "model_size_bytes": self.model_size_bytes, "note": EMULATED_NOTE}
        if self.benchmark_model is not None:
            remote = self.benchmark_model
            return {"tool": self.tool, "tool_sha256": remote.tool_sha256, "latency_ms": latency, "runs": self.runs,
                    "init_ms": remote.init_ms, "first_inference_ms": remote.first_inference_ms,
                    "warmup_avg_ms": remote.warmup_avg_ms, "memory_mb": asdict(remote.memory_mb),
                    "delegate": remote.delegate.to_dict(), "ops": remote.ops, "threads": self.threads,
                    "device_info": remote.device_info, "model_size_bytes": self.model_size_bytes}
        return {"tool": self.tool, "latency_ms": latency, "runs": self.runs, "warmup": self.warmup,
                "threads": self.threads, "execution": self.execution, "versions": self.versions,
                "model_size_bytes": self.model_size_bytes}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyResult:
        """A ``to_dict()`` entry read back (from results.json); its keys tell which tool wrote it."""
        common = {"tool": data.get("tool", "edgedeploy"), "threads": data.get("threads"), "runs": data.get("runs"),
                  "latency_ms": LatencyStats.from_dict(data["latency_ms"]), "warmup": data.get("warmup"),
                  "execution": data.get("execution"), "versions": data.get("versions"),
                  "model_size_bytes": data.get("model_size_bytes")}
        if data.get("emulated"):
            return cls(**common, emulation=EmulationFigures(data["load_ms"], data["machine"]))
        if "tool_sha256" in data:
            return cls(**common, benchmark_model=BenchmarkModelFigures(
                data["tool_sha256"], data["init_ms"], data["first_inference_ms"], data["warmup_avg_ms"],
                MemoryFootprint(**data["memory_mb"]), DelegateCoverage.from_dict(data["delegate"]), data["ops"],
                data.get("device_info") or {}))
        if "throughput_ips" in data:
            return cls(**common, in_process=InProcessFigures(
                data["throughput_ips"], data["peak_rss_mb"], data.get("rss_after_load_mb"), data.get("samples_ms", [])))
        return cls(**common)
