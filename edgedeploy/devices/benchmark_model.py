"""LiteRT's ``benchmark_model`` tool: the command line we run and a parser for what it prints.

The parser follows the tool's own format strings (tflite/tools/benchmark/benchmark_model.cc,
benchmark_tflite_model.cc, profiling/profile_summary_formatter.cc and the TSL stats
calculator) and accepts the wordings older binaries print: lines with or without the
``INFO: `` prefix, ``count=`` lines with or without ``p5/median/p95``, and both forms of
the delegate "Replacing N [out of M] node(s)" line. Op-profiling tables are split on
tabs (or runs of spaces, as logcat renders them), since long node types overflow their
columns.

Delegate coverage is the point: a GPU or NNAPI run that quietly fell back to the CPU
is reported as such (``fallback``), never as a GPU figure.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["BenchmarkModelRun", "DelegateReport", "OpProfile", "parse_output", "benchmark_args", "DELEGATE_FLAGS"]

# What edgedeploy calls a delegate -> the benchmark_model flags that request it.
DELEGATE_FLAGS: dict[str, tuple[str, ...]] = {
    "xnnpack": ("--use_xnnpack=true",),
    "cpu": ("--use_xnnpack=false",),
    "gpu": ("--use_gpu=true",),
    "nnapi": ("--use_nnapi=true",),
}
# benchmark_model's GetName() for the explicitly applied delegates, and the kernel names
# that appear in "Replacing ... with delegate (<kernel>)" lines and op-profiling tables.
_PROVIDER_NAMES = {"gpu": "GPU", "nnapi": "NNAPI", "xnnpack": "XNNPACK"}
_KERNELS = {"TfLiteGpuDelegateV2": "gpu", "TfLiteNnapiDelegate": "nnapi", "TfLiteXNNPackDelegate": "xnnpack"}

# "INFO: " (tool and runtime lines), or a logcat prefix ("05-30 15:16:44.857  3380  3380 I tflite  : ").
_PREFIX = re.compile(r"^(?:(?:\d\d-\d\d [\d:.]+\s+\d+\s+\d+\s+)?[VDIWEF]\s+tflite\s*:\s*|"
                     r"(?:INFO|VERBOSE|WARN|WARNING|ERROR|FATAL): )")
_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|nan|-?inf"
_STATS = re.compile(r"^count=(\d+)(.*)$")
_KEYVAL = re.compile(rf"(\w+)=({_NUMBER})")
_TIMINGS = re.compile(
    rf"^Inference timings in us: Init: ({_NUMBER}), First inference: ({_NUMBER}), "
    rf"Warmup \(avg\): ({_NUMBER}), Inference \(avg\): ({_NUMBER})")
_MEMORY = re.compile(rf"^Memory footprint delta from the start of the tool \(MB\): init=({_NUMBER}) overall=({_NUMBER})")
_PEAK = re.compile(rf"^Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUMBER})")
_SIZE = re.compile(rf"^The input model file size \(MB\): ({_NUMBER})")
_INIT = re.compile(rf"^Initialized session in ({_NUMBER})\s*ms\.")
_REPLACING = re.compile(
    r"^Replacing (\d+) (?:out of (\d+) )?node\(s\) with delegate \((\w+)\) node, yielding (\d+) partitions")
_APPLIED_FULL = re.compile(r"^Explicitly applied (\w[\w-]*) delegate, and the model graph will be completely executed")
_APPLIED_PARTIAL = re.compile(
    r"^Explicitly applied (\w[\w-]*) delegate, and the model graph will be partially executed by the delegate "
    r"w/ (\d+) delegate kernels")
_APPLIED_NONE = re.compile(r"^Though (\w[\w-]*) delegate is explicitly applied, the model graph will not be executed")
_OPS_HEADER = "Operator-wise Profiling Info for Regular Benchmark Runs:"
_TABLE_TITLE = re.compile(r"^=+ (.+?) =+$")


@dataclass
class DelegateReport:
    """How much of the graph one delegate really took."""

    delegate: str
    # full | partial | none | unknown ("Replacing" seen but no verdict line)
    status: str
    nodes_delegated: int | None = None
    nodes_total: int | None = None
    partitions: int | None = None
    kernels: int | None = None

    @property
    def fell_back(self) -> bool:
        return self.status in ("partial", "none")


@dataclass
class OpProfile:
    node_type: str
    avg_ms: float
    percent: float
    times_called: int
    name: str
    # The op ran inside a delegate (a delegate kernel row, or XNNPACK's "Delegate/..." rows).
    delegated: bool


@dataclass
class BenchmarkModelRun:
    """Everything benchmark_model reported about one run (times in ms, memory in MiB)."""

    init_ms: float | None = None
    first_inference_ms: float | None = None
    warmup_avg_ms: float | None = None
    inference_avg_ms: float | None = None
    runs: int | None = None
    stats_ms: dict[str, float] = field(default_factory=dict)
    model_size_mb: float | None = None
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None
    peak_memory_mb: float | None = None
    delegates: list[DelegateReport] = field(default_factory=list)
    ops: list[OpProfile] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def delegate(self, name: str) -> DelegateReport | None:
        return next((d for d in self.delegates if d.delegate == name), None)

    def cpu_fallback_ops(self) -> list[OpProfile]:
        """Ops that ran on the CPU's builtin kernels (empty when profiling was off)."""
        return [op for op in self.ops if not op.delegated]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["delegates"] = [{**asdict(d), "fell_back": d.fell_back} for d in self.delegates]
        return out


def _clean(line: str) -> str:
    return _PREFIX.sub("", line.rstrip("\r\n")).strip()


def _stats(rest: str, count: int) -> dict[str, float]:
    """A count= line's values, in ms; the all-same form carries only curr (= every value)."""
    values = {k: float(v) / 1000.0 for k, v in _KEYVAL.findall(rest)}
    if "avg" not in values and "curr" in values:
        values = {**{k: values["curr"] for k in ("min", "max", "avg", "first")}, "std": 0.0, **values}
    values["count"] = float(count)
    return values


def _delegate_name(provider_name: str) -> str:
    return {v: k for k, v in _PROVIDER_NAMES.items()}.get(provider_name, provider_name.lower())


def _table_cells(line: str) -> list[str]:
    parts = line.split("\t") if "\t" in line else re.split(r"\s{2,}", line)
    return [p.strip() for p in parts if p.strip()]


def _parse_op_rows(lines: list[str], start: int) -> list[OpProfile]:
    """The "Run Order" table of the regular runs: every node, in execution order."""
    ops: list[OpProfile] = []
    in_run_order = False
    for raw in lines[start:]:
        line = _clean(raw)
        title = _TABLE_TITLE.match(line)
        if title:
            if in_run_order:
                break
            in_run_order = title.group(1) == "Run Order"
            continue
        if not in_run_order or not line or line.startswith("["):
            continue
        cells = _table_cells(line)
        # [node type] [start]? [first] [avg ms] [%] [cdf%] [mem KB] [times called] [Name]
        if len(cells) < 8:
            continue
        node_type, name = cells[0], cells[-1]
        numbers = cells[1:-1]
        try:
            avg_ms, percent, times = float(numbers[-5]), float(numbers[-4].rstrip("%")), int(float(numbers[-1]))
        except (ValueError, IndexError):
            continue
        delegated = node_type in _KERNELS or name.startswith("Delegate/")
        ops.append(OpProfile(node_type, avg_ms, percent, times, name, delegated))
    return ops


def parse_output(text: str, requested: str | None = None) -> BenchmarkModelRun:
    """Parse benchmark_model's stdout+stderr; ``requested`` names the delegate asked for (gpu, nnapi...)."""
    run = BenchmarkModelRun()
    lines = text.splitlines()
    stats_seen = 0
    replacing: dict[str, DelegateReport] = {}
    verdicts: dict[str, DelegateReport] = {}
    ops_start = None
    for index, raw in enumerate(lines):
        line = _clean(raw)
        if (m := _STATS.match(line)) and stats_seen < 2:
            # The first count= line is the warm-up, the second the timed runs.
            stats_seen += 1
            if stats_seen == 2:
                run.stats_ms = _stats(m.group(2), int(m.group(1)))
                run.runs = int(m.group(1))
        elif m := _TIMINGS.match(line):
            init, first, warmup, avg = (float(g) for g in m.groups())
            run.init_ms, run.first_inference_ms = init / 1000.0, first / 1000.0
            run.warmup_avg_ms, run.inference_avg_ms = warmup / 1000.0, avg / 1000.0
        elif m := _MEMORY.match(line):
            run.memory_init_mb, run.memory_overall_mb = float(m.group(1)), float(m.group(2))
        elif m := _PEAK.match(line):
            run.peak_memory_mb = float(m.group(1))
        elif m := _SIZE.match(line):
            run.model_size_mb = float(m.group(1))
        elif (m := _INIT.match(line)) and run.init_ms is None:
            run.init_ms = float(m.group(1))
        elif m := _REPLACING.match(line):
            name = _KERNELS.get(m.group(3), m.group(3))
            replaced, total = int(m.group(1)), int(m.group(2)) if m.group(2) else None
            status = "unknown" if total is None else "full" if replaced == total else "partial"
            replacing[name] = DelegateReport(name, status, replaced, total, int(m.group(4)))
        elif m := _APPLIED_FULL.match(line):
            verdicts[_delegate_name(m.group(1))] = DelegateReport(_delegate_name(m.group(1)), "full", kernels=1)
        elif m := _APPLIED_PARTIAL.match(line):
            name = _delegate_name(m.group(1))
            verdicts[name] = DelegateReport(name, "partial", kernels=int(m.group(2)))
        elif m := _APPLIED_NONE.match(line):
            name = _delegate_name(m.group(1))
            verdicts[name] = DelegateReport(name, "none", kernels=0)
        elif line.startswith(_OPS_HEADER):
            ops_start = index + 1
        elif raw.startswith(("ERROR: ", "FATAL: ")):
            run.errors.append(line)
    for name in sorted(set(replacing) | set(verdicts)):
        # The verdict line decides the status; the Replacing line adds node counts.
        report = verdicts.get(name) or replacing[name]
        counts = replacing.get(name)
        if counts is not None:
            report.nodes_delegated, report.nodes_total, report.partitions = (
                counts.nodes_delegated, counts.nodes_total, counts.partitions)
            if report.status == "full" and counts.status == "partial":
                report.status = "partial"
        run.delegates.append(report)
    if requested in _PROVIDER_NAMES and requested != "xnnpack" and run.delegate(requested) is None:
        # Asked for, never mentioned: it was not applied at all.
        run.delegates.append(DelegateReport(requested, "none", kernels=0))
    if ops_start is not None:
        run.ops = _parse_op_rows(lines, ops_start)
    return run


def benchmark_args(graph: str, threads: int, delegate: str, runs: int, warmup: int,
                   op_profiling: bool) -> list[str]:
    """benchmark_model's command line for one measurement (``--key=value``: the tool ignores bare flags)."""
    return [f"--graph={graph}", f"--num_threads={threads}", *DELEGATE_FLAGS[delegate],
            f"--num_runs={runs}", f"--warmup_runs={warmup}", "--min_secs=0", "--warmup_min_secs=0",
            "--report_peak_memory_footprint=true", f"--enable_op_profiling={'true' if op_profiling else 'false'}"]
