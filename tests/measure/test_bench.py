import numpy as np
import pytest

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.limits import MAX_RUNS
from edgedeploy.devices import builtin_devices, get_device
from edgedeploy.devices.latency import InProcessFigures, LatencyResult, LatencyStats
from edgedeploy.measure.bench import benchmark, latency_stats, merge_rounds
from edgedeploy.models.architecture import Architecture
from edgedeploy.runtimes import LoadOptions, load_runner


def test_bench_reports_ordered_percentiles(onnx_artifact):
    runner = load_runner(str(onnx_artifact.path), LoadOptions(threads=2))
    res = benchmark(runner, runs=20, warmup=2)
    lat = res.latency_ms
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["std"] >= 0 and res.runs == 20
    assert res.throughput_ips == pytest.approx(1000 / lat["mean"], rel=0.01)
    assert res.peak_rss_mb > 50


@pytest.mark.parametrize("runs,warmup", [(0, 1), (MAX_RUNS + 1, 1), (10, -1)])
def test_absurd_run_counts_are_refused(runs, warmup):
    runner = load_runner("random", LoadOptions(threads=1, architecture=Architecture(width=0.35, resolution=96)))
    with pytest.raises(ConfigError, match="must be between"):
        benchmark(runner, runs=runs, warmup=warmup)


def test_device_registry():
    assert "cpu" in builtin_devices() and get_device("cpu").default_threads() >= 1
    with pytest.raises(ConfigError, match="unknown device 'pixel9'; known devices: cpu, gpu, pixel"):
        get_device("pixel9")


def test_bench_on_the_cpu_device_is_one_typed_result():
    from edgedeploy.devices import LatencyResult
    from edgedeploy.measure.on_device import bench_on_device

    options = LoadOptions(threads=1, architecture=Architecture(width=0.35, resolution=96))
    result = bench_on_device("random", get_device("cpu"), options, runs=4, warmup=1)
    assert result.tool == "edgedeploy" and result.threads == 1 and result.runs == 4 and result.warmup == 1
    assert result.in_process is not None and len(result.in_process.samples_ms) == 4 and not result.emulated
    assert 0 < result.latency_ms.min <= result.latency_ms.p50 <= result.latency_ms.max
    out = result.to_dict()
    assert list(out) == ["tool", "latency_ms", "runs", "warmup", "throughput_ips", "peak_rss_mb", "rss_after_load_mb",
                         "samples_ms", "threads", "execution", "versions", "model_size_bytes"]
    assert LatencyResult.from_dict(out) == result


def test_a_broken_user_profile_file_fails_only_commands_that_use_devices(tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from edgedeploy.cli.app import cli

    broken = tmp_path / "broken.yaml"
    broken.write_text("- name: x\n  description: d\n  transport: serial\n  runtimes: [litert]\n")
    monkeypatch.setenv("EDGEDEPLOY_DEVICES", str(broken))
    listed = CliRunner().invoke(cli, ["devices", "--json"])
    assert listed.exit_code == 2 and "broken.yaml:3: 0.transport: Input should be" in json.loads(listed.stdout)["error"]
    bench = CliRunner().invoke(cli, ["bench", "random", "--width", "0.35", "--resolution", "96", "--runs", "1",
                                     "--warmup", "0", "--threads", "1", "--json"])
    assert bench.exit_code == 2  # bench --device cpu reads the profiles, the user's file too
    inspected = CliRunner().invoke(cli, ["inspect", "random", "--width", "0.35", "--resolution", "96", "--json"])
    assert inspected.exit_code == 0, inspected.output


def in_process(samples, throughput, peak):
    return LatencyResult(tool="edgedeploy", threads=2, runs=len(samples), warmup=2,
                         latency_ms=LatencyStats.from_dict(latency_stats(np.asarray(samples))),
                         in_process=InProcessFigures(throughput, peak, 300.0, samples))


def test_rounds_merge_into_one_result_over_every_timed_run():
    first, second = in_process([4.0, 5.0, 6.0], 200.0, 400.0), in_process([7.0, 8.0], 133.33, 410.0)
    merged = merge_rounds([first, second])
    assert merged.runs == 5 and merged.in_process.samples_ms == [4.0, 5.0, 6.0, 7.0, 8.0]
    assert merged.latency_ms.p50 == 6.0 and merged.latency_ms.mean == 6.0 and merged.latency_ms.max == 8.0
    # The same batch in every round: throughput follows the mean latency (1 image / 6 ms).
    assert merged.in_process.throughput_ips == pytest.approx(1000 / 6.0, abs=0.01)
    assert merged.in_process.peak_rss_mb == 410.0 and merged.in_process.rss_after_load_mb == 300.0
    assert merge_rounds([first]) is first


def test_summary_statistics_cannot_be_merged():
    remote = LatencyResult(tool="benchmark_model", threads=4, runs=50, latency_ms=LatencyStats(p50=3.0))
    with pytest.raises(ValueError, match="only in-process results"):
        merge_rounds([remote, remote])
