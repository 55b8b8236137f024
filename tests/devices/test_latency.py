"""One LatencyResult for every tool: to_dict() writes each tool's keys exactly as they have always
been written (bench --json and results.json are a public contract), and from_dict() reads them back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgedeploy.devices import LatencyResult, LatencyStats
from edgedeploy.devices.latency import (
    BenchmarkModelFigures,
    DelegateCoverage,
    EmulationFigures,
    InProcessFigures,
    MemoryFootprint,
)

BASELINE = Path(__file__).resolve().parents[2] / "recipes" / "baselines" / "mobilenet_v2.json"

IN_PROCESS = LatencyResult(
    tool="edgedeploy", threads=2, runs=3, warmup=1,
    latency_ms=LatencyStats.from_dict({"p50": 2.0, "p90": 2.5, "p99": 2.9, "mean": 2.1, "std": 0.3, "min": 1.8,
                                       "max": 3.0}),
    in_process=InProcessFigures(throughput_ips=476.19, peak_rss_mb=300.1, rss_after_load_mb=None,
                                samples_ms=[1.8, 2.0, 3.0]),
    execution={"provider": "CPUExecutionProvider"}, versions={"onnxruntime": "1.20"}, model_size_bytes=1234)
EMULATED = LatencyResult(
    tool="edgedeploy (qemu)", threads=1, runs=2, warmup=0,
    latency_ms=LatencyStats.from_dict({"p50": 440.0, "p90": 450.0, "mean": 441.0, "min": 430.0, "max": 452.0}),
    emulation=EmulationFigures(load_ms=900.0, machine="aarch64"),
    execution={"device": "qemu-aarch64 cortex-a76", "emulated": True, "delegate": "XNNPACK"},
    versions={"ai-edge-litert": "1.2 (aarch64)", "qemu": "cortex-a76"}, model_size_bytes=4096)
REMOTE = LatencyResult(
    tool="benchmark_model", threads=4, runs=50,
    latency_ms=LatencyStats.from_dict({"p50": None, "mean": 12.2, "median": None, "std": 0.3, "min": 11.8,
                                       "max": 13.7, "p5": None, "p95": None}),
    model_size_bytes=72,
    benchmark_model=BenchmarkModelFigures(
        tool_sha256="ab" * 32, init_ms=126.1, first_inference_ms=32.9, warmup_avg_ms=14.0,
        memory_mb=MemoryFootprint(None, None, None),
        delegate=DelegateCoverage("nnapi", "partial", None, None, None, 44, cpu_ops=[]),
        ops=None, device_info={"serial": "8ABX0B1X2", "model": "Pixel 8 Pro"}))


def test_in_process_layout_and_samples():
    out = IN_PROCESS.to_dict()
    assert list(out) == ["tool", "latency_ms", "runs", "warmup", "throughput_ips", "peak_rss_mb", "rss_after_load_mb",
                         "samples_ms", "threads", "execution", "versions", "model_size_bytes"]
    assert list(out["latency_ms"]) == ["p50", "p90", "p99", "mean", "std", "min", "max"]
    assert "samples_ms" not in IN_PROCESS.to_dict(samples=False)
    assert not IN_PROCESS.emulated


def test_emulated_layout_is_flagged():
    out = EMULATED.to_dict()
    assert list(out) == ["tool", "emulated", "threads", "runs", "warmup", "latency_ms", "load_ms", "machine",
                         "execution", "versions", "model_size_bytes", "note"]
    assert out["emulated"] is True and out["note"] == "emulated: not device latency" and EMULATED.emulated
    assert list(out["latency_ms"]) == ["p50", "p90", "mean", "min", "max"]


def test_benchmark_model_layout_keeps_reported_nones():
    out = REMOTE.to_dict()
    assert list(out) == ["tool", "tool_sha256", "latency_ms", "runs", "init_ms", "first_inference_ms",
                         "warmup_avg_ms", "memory_mb", "delegate", "ops", "threads", "device_info", "model_size_bytes"]
    # Older binaries print no percentiles: the keys are still there, as null.
    assert out["latency_ms"] == {"p50": None, "mean": 12.2, "median": None, "std": 0.3, "min": 11.8, "max": 13.7,
                                 "p5": None, "p95": None}
    assert out["delegate"] == {"requested": "nnapi", "status": "partial", "nodes_delegated": None,
                               "nodes_total": None, "partitions": None, "kernels": 44, "cpu_ops": []}
    assert out["memory_mb"] == {"init": None, "overall": None, "peak": None}
    assert DelegateCoverage("cpu", "n/a").to_dict() == {"requested": "cpu", "status": "n/a"}


@pytest.mark.parametrize("result", [IN_PROCESS, EMULATED, REMOTE], ids=["in-process", "emulated", "benchmark_model"])
def test_json_round_trip(result):
    text = json.dumps(result.to_dict())
    back = LatencyResult.from_dict(json.loads(text))
    assert back == result and json.dumps(back.to_dict()) == text  # same keys, same order


def test_a_plain_result_from_a_new_transport():
    plain = LatencyResult(tool="toybench", threads=1, runs=5, latency_ms=LatencyStats(p50=1.5, mean=1.6))
    assert plain.to_dict() == {"tool": "toybench", "latency_ms": {"p50": 1.5, "mean": 1.6}, "runs": 5, "warmup": None,
                               "threads": 1, "execution": None, "versions": None, "model_size_bytes": None}
    assert LatencyResult.from_dict(plain.to_dict()) == plain


def test_one_tool_per_result_and_known_statistics_only():
    with pytest.raises(ValueError, match="at most one"):
        LatencyResult(tool="x", threads=1, runs=1, latency_ms=LatencyStats(p50=1.0),
                      in_process=IN_PROCESS.in_process, emulation=EMULATED.emulation)
    with pytest.raises(ValueError, match="unknown latency statistics: p42"):
        LatencyStats.from_dict({"p42": 1.0})


def test_the_kept_baseline_reads_back():
    """results.json files written before `tool`/`versions` existed still read (and still gate on p50)."""
    results = json.loads(BASELINE.read_text())
    entries = [results["reference"]["latency"], *(t["latency"] for t in results["targets"].values() if "latency" in t)]
    for entry in entries:
        for device, lat in entry.items():
            parsed = LatencyResult.from_dict(lat)
            assert parsed.in_process is not None and parsed.latency_ms.p50 == lat["latency_ms"]["p50"]
            assert parsed.in_process.samples_ms == lat["samples_ms"]
            assert {k: v for k, v in parsed.to_dict().items() if k in lat} == lat
