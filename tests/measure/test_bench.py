import pytest

from edgedeploy.backends import LoadOptions, load_runner
from edgedeploy.core.errors import ConfigError
from edgedeploy.devices import builtin_devices, get_device
from edgedeploy.measure.bench import MAX_RUNS, benchmark


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
    runner = load_runner("random", LoadOptions(threads=1, width=0.35, resolution=96))
    with pytest.raises(ConfigError, match="must be between"):
        benchmark(runner, runs=runs, warmup=warmup)


def test_device_registry():
    assert "cpu" in builtin_devices() and get_device("cpu").default_threads() >= 1
    with pytest.raises(ConfigError, match="unknown device 'pixel9'; known devices: cpu, gpu, pixel"):
        get_device("pixel9")
