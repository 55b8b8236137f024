"""``edgedeploy bench``: latency on a device."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from edgedeploy.cli import ranges
from edgedeploy.cli.options import (
    ModelArgs,
    devices_option,
    emit_json,
    json_option,
    model_options,
    progress,
    runtime_name,
    verified_text,
)
from edgedeploy.cli.render import execution_text, fmt, key_values, table

if TYPE_CHECKING:
    from edgedeploy.devices import LatencyResult
    from edgedeploy.devices.latency import BenchmarkModelFigures


@click.command()
@click.argument("model")
@click.option("--device", default="cpu", show_default=True, help="Where to run: see `edgedeploy devices`.")
@click.option("--runs", type=ranges.RUNS, default=100, show_default=True, help="Timed runs.")
@click.option("--warmup", type=ranges.WARMUP, default=10, show_default=True, help="Untimed runs first.")
@click.option("--delegate", type=click.Choice(["xnnpack", "cpu", "gpu", "nnapi"]), default=None,
              help="LiteRT delegate where the device offers it [default: xnnpack].")
@click.option("--benchmark-binary", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Remote devices: LiteRT's benchmark_model for the device [default: the cached download].")
@click.option("--op-profiling", is_flag=True, help="Remote devices: per-op timings and where each op ran.")
@devices_option
@model_options
@json_option
def bench(as_json: bool, model: str, device: str, runs: int, warmup: int, delegate: str | None,
          benchmark_binary: Path | None, op_profiling: bool, devices_file: str | None,
          model_args: ModelArgs) -> None:
    """Latency of MODEL on a device: percentiles, throughput, memory, and how it really ran."""
    from edgedeploy.devices import driver_for, get_device
    from edgedeploy.measure.bench import host_step_latency
    from edgedeploy.measure.on_device import bench_on_device
    from edgedeploy.runtimes import check_model_files

    dev = get_device(device, devices_file)
    in_process = driver_for(dev).in_process
    options = model_args.load_options(dev.default_threads())
    with progress(runs if in_process else 0, "bench") as bar:
        result = bench_on_device(model, dev, options, runs, warmup, delegate, benchmark_binary, op_profiling,
                                 on_progress=bar.update)
    verified = check_model_files(model, options.verify).verified  # checked in bench_on_device: a cache hit here
    runtime = runtime_name(model)
    host_step = host_step_latency(model, options, runs, result.latency_ms.p50) if in_process else None
    if as_json:
        emit_json({"model": model, "runtime": runtime, "device": dev.name, **result.to_dict(samples=False),
                   "host": dev.describe_host() if in_process else None, "verified": verified,
                   **({"host_step": host_step} if host_step else {})})
        return
    execution = execution_text(result.execution)
    click.echo(key_values([("model", f"{model} ({runtime})"), ("device", f"{dev.name}, {result.threads} threads"),
                           *([("execution", execution)] if execution else []),
                           ("runs", f"{result.runs} (+{warmup} warm-up)"), ("verified", verified_text(verified))]))
    if result.benchmark_model is not None:
        _echo_benchmark_model(result, result.benchmark_model)
    else:
        _echo_timing_loop(result)
    if host_step:
        step = host_step["latency_ms"]
        click.echo(key_values([("host step", f"p50 {step['p50']:.2f} ms, p90 {step['p90']:.2f} ms (decoding + NMS in "
                                             f"this process): {100 * host_step['share_of_p50']:.1f}% of the p50")]))


def _echo_timing_loop(result: LatencyResult) -> None:
    """edgedeploy's own timing loop: in this process, under emulation, or a plugin transport's."""
    lat = result.latency_ms
    if result.in_process is not None:
        click.echo(table(["latency ms", "p50", "p90", "p99", "mean", "std", "min", "max"],
                         [["", lat.p50, lat.p90, lat.p99, lat.mean, lat.std, lat.min, lat.max]]))
        click.echo(key_values([("throughput", f"{result.in_process.throughput_ips:.1f} img/s"),
                               ("peak RSS", f"{result.in_process.peak_rss_mb:.0f} MiB")]))
    elif result.emulated:
        click.echo(table(["EMULATED latency ms (not device latency)", "p50", "p90", "mean", "min", "max"],
                         [["", lat.p50, lat.p90, lat.mean, lat.min, lat.max]]))
    else:
        stats = lat.to_dict()
        click.echo(table(["latency ms", *stats], [["", *stats.values()]]))


def _echo_benchmark_model(result: LatencyResult, remote: BenchmarkModelFigures) -> None:
    """LiteRT's benchmark_model on a remote device: its timings, the delegate's coverage, memory."""
    lat = result.latency_ms
    click.echo(table(["latency ms", "median", "mean", "std", "min", "max", "first", "init"],
                     [["", lat.median, lat.mean, lat.std, lat.min, lat.max, remote.first_inference_ms,
                       remote.init_ms]]))
    coverage = remote.delegate
    if coverage.status == "partial":
        taken = (f"{coverage.nodes_delegated} of {coverage.nodes_total} nodes" if coverage.nodes_total
                 else f"{coverage.kernels} delegate kernels")
        click.echo(f"WARNING: the {coverage.requested} delegate took only {taken}; the rest ran on the CPU"
                   + (f": {', '.join(coverage.cpu_ops)}" if coverage.cpu_ops else ""), err=True)
    mem = remote.memory_mb
    click.echo(key_values([("delegate", f"{coverage.requested}: {coverage.status}"),
                           ("memory", f"init {fmt(mem.init)} MiB, overall {fmt(mem.overall)} MiB, "
                                      f"peak {fmt(mem.peak)} MiB")]))
