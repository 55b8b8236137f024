"""Interleaved bench rounds: the runs are split evenly, the order alternates, and each model's rounds
come back as one result with every timed run (a real ONNX model on this CPU)."""

import pytest

from edgedeploy.devices import get_device
from edgedeploy.recipes.interleaved import BenchJob, bench_interleaved, split_runs
from edgedeploy.runtimes import LoadOptions


@pytest.mark.parametrize("runs, rounds, sizes", [(100, 5, [20] * 5), (7, 3, [3, 2, 2]), (2, 5, [1, 1]), (9, 1, [9])])
def test_runs_are_split_evenly_over_the_rounds(runs, rounds, sizes):
    assert split_runs(runs, rounds) == sizes and sum(sizes) == runs


def test_targets_alternate_round_by_round_and_come_back_merged(onnx_artifact, tmp_path):
    order = []
    jobs = [BenchJob("a", str(onnx_artifact.path), LoadOptions()), BenchJob("b", str(onnx_artifact.path), LoadOptions()),
            BenchJob("broken", str(tmp_path / "missing.onnx"), LoadOptions())]
    measured = bench_interleaved(jobs, get_device("cpu"), runs=6, warmup=1, rounds=3, threads=1,
                                 progress=lambda name, detail: order.append((name, detail)))
    assert [name for name, _ in order] == ["a", "b", "broken", "b", "a", "a", "b"]  # A B, B A, A B; broken once
    assert order[0] == ("a", "cpu, round 1/3")
    for name in ("a", "b"):
        result = measured[name]
        assert result.runs == 6 and len(result.in_process.samples_ms) == 6 and result.threads == 1
    assert "missing.onnx" in str(measured["broken"])
