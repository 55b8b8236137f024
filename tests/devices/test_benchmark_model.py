"""The benchmark_model parser on real captured output (tests/devices/captures)."""

from pathlib import Path

import pytest

from edgedeploy.devices.benchmark_model import benchmark_args, parse_output

CAPTURES = Path(__file__).with_name("captures")


def parse(name, requested=None):
    return parse_output((CAPTURES / name).read_text(), requested)


def test_current_format_cpu_run():
    run = parse("android_cpu_xnnpack.txt", "xnnpack")
    assert run.runs == 50
    assert run.inference_avg_ms == pytest.approx(699.438)
    assert run.stats_ms["median"] == pytest.approx(576.856) and run.stats_ms["p95"] == pytest.approx(1373.207)
    assert run.stats_ms["min"] == pytest.approx(502.355) and run.stats_ms["std"] == pytest.approx(325.425)
    assert (run.init_ms, run.first_inference_ms, run.warmup_avg_ms) == pytest.approx((102.32, 670.083, 670.083))
    assert (run.model_size_mb, run.memory_init_mb, run.memory_overall_mb) == pytest.approx((16.1527, 98.0977, 99.2031))
    xnnpack = run.delegate("xnnpack")
    assert (xnnpack.status, xnnpack.nodes_delegated, xnnpack.nodes_total, xnnpack.partitions) == ("full", 49, 49, 1)
    assert run.errors == []


def test_gpu_took_everything_and_nnapi_nothing():
    run = parse("android_gpu_full_nnapi_none.txt", "gpu")
    gpu, nnapi = run.delegate("gpu"), run.delegate("nnapi")
    assert (gpu.status, gpu.nodes_delegated, gpu.nodes_total, gpu.fell_back) == ("full", 49, 49, False)
    assert nnapi.status == "none" and nnapi.fell_back
    assert run.inference_avg_ms == pytest.approx(309.35) and run.init_ms == pytest.approx(5664.363)


def test_partial_nnapi_from_logcat():
    run = parse("android_nnapi_partial_logcat.txt", "nnapi")
    nnapi = run.delegate("nnapi")
    assert (nnapi.status, nnapi.kernels, nnapi.fell_back) == ("partial", 44, True)
    assert run.runs == 75 and run.inference_avg_ms == pytest.approx(12.1676)
    assert run.stats_ms["min"] == pytest.approx(11.787)


def test_nnapi_that_took_nothing():
    assert parse("android_nnapi_none_logcat.txt", "nnapi").delegate("nnapi").status == "none"


def test_a_requested_delegate_never_mentioned_counts_as_not_applied():
    run = parse("android_cpu_xnnpack.txt", "gpu")
    assert run.delegate("gpu").status == "none"


@pytest.mark.parametrize("name, runs, avg_ms", [
    ("android_gpu_older_format.txt", 50, 119.375),
    ("android_cpu_oldest_wording.txt", 50, 33.2094),
])
def test_older_wordings(name, runs, avg_ms):
    run = parse(name)
    assert run.runs == runs and run.inference_avg_ms == pytest.approx(avg_ms)


def test_op_profiling_rows_say_where_each_op_ran():
    run = parse("linux_x86_op_profiling.txt")
    assert [op.node_type for op in run.ops] == ["QUANTIZE", "Convolution (NHWC, QC8) IGEMM",
                                                "Convolution (NHWC, QC8) DWConv", "Max Pooling (NHWC, S8)"]
    first = run.ops[0]
    assert (first.avg_ms, first.percent, first.times_called, first.name) == (0.203, 1.328, 1, "[tfl.quantize]:0")
    assert [op.node_type for op in run.cpu_fallback_ops()] == ["QUANTIZE"]
    assert run.ops[2].times_called == 13 and run.ops[2].delegated


def test_failure_output_has_no_timings_and_keeps_errors():
    run = parse_output("INFO: STARTING!\nERROR: Failed to load model /x.tflite\nERROR: Benchmarking failed.\n")
    assert run.inference_avg_ms is None and run.errors == ["Failed to load model /x.tflite", "Benchmarking failed."]


def test_command_line_uses_key_value_flags():
    args = benchmark_args("/d/m.tflite", 4, "gpu", 50, 5, op_profiling=True)
    assert args[:3] == ["--graph=/d/m.tflite", "--num_threads=4", "--use_gpu=true"]
    assert "--enable_op_profiling=true" in args and all("=" in a for a in args)
