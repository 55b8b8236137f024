"""``edgedeploy bench``: latency on a device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgedeploy.cli.options import (
    devices_option,
    emit_json,
    json_option,
    load_options,
    model_options,
    progress,
    runtime_name,
)
from edgedeploy.cli.render import fmt, key_values, table


@click.command()
@click.argument("model")
@click.option("--device", default="cpu", show_default=True, help="Where to run: see `edgedeploy devices`.")
@click.option("--runs", type=int, default=100, show_default=True, help="Timed runs.")
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed runs first.")
@click.option("--delegate", type=click.Choice(["xnnpack", "cpu", "gpu", "nnapi"]), default=None,
              help="LiteRT delegate where the device offers it [default: xnnpack].")
@click.option("--benchmark-binary", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Remote devices: LiteRT's benchmark_model for the device [default: the cached download].")
@click.option("--op-profiling", is_flag=True, help="Remote devices: per-op timings and where each op ran.")
@devices_option
@model_options
@json_option
def bench(as_json: bool, model: str, device: str, runs: int, warmup: int, delegate: str | None,
          benchmark_binary: Path | None, op_profiling: bool, devices_file: str | None, **kw: Any) -> None:
    """Latency of MODEL on a device: percentiles, throughput, memory, and how it really ran."""
    from edgedeploy.devices import get_device
    from edgedeploy.measure.on_device import bench_on_device

    dev = get_device(device, devices_file)
    options = load_options(kw, kw["threads"] or dev.default_threads())
    with progress(runs if dev.in_process else 0, "bench") as bar:
        result = bench_on_device(model, dev, options, runs, warmup, delegate, benchmark_binary, op_profiling,
                                 on_progress=bar.update)
    samples = result.pop("samples_ms", None)
    out = {"model": model, "runtime": runtime_name(model), "device": dev.name, **result,
           "host": dev.describe_host() if dev.in_process else None}
    if as_json:
        emit_json(out)
        return
    lat = out["latency_ms"]
    execution = ", ".join(f"{k} {v}" for k, v in (out.get("execution") or {}).items())
    click.echo(key_values([("model", f"{model} ({out['runtime']})"), ("device", f"{dev.name}, {out['threads']} threads"),
                           *([("execution", execution)] if execution else []),
                           ("runs", f"{out['runs']} (+{warmup} warm-up)")]))
    if samples is not None:
        click.echo(table(["latency ms", "p50", "p90", "p99", "mean", "std", "min", "max"],
                         [["", lat["p50"], lat["p90"], lat["p99"], lat["mean"], lat["std"], lat["min"], lat["max"]]]))
        click.echo(key_values([("throughput", f"{out['throughput_ips']:.1f} img/s"),
                               ("peak RSS", f"{out['peak_rss_mb']:.0f} MiB")]))
        return
    if out.get("emulated"):
        click.echo(table(["EMULATED latency ms (not device latency)", "p50", "p90", "mean", "min", "max"],
                         [["", lat["p50"], lat["p90"], lat["mean"], lat["min"], lat["max"]]]))
        return
    click.echo(table(["latency ms", "median", "mean", "std", "min", "max", "first", "init"],
                     [["", lat["median"], lat["mean"], lat["std"], lat["min"], lat["max"], out["first_inference_ms"],
                       out["init_ms"]]]))
    coverage = out["delegate"]
    if coverage.get("status") == "partial":
        taken = (f"{coverage['nodes_delegated']} of {coverage['nodes_total']} nodes" if coverage.get("nodes_total")
                 else f"{coverage['kernels']} delegate kernels")
        click.echo(f"WARNING: the {coverage['requested']} delegate took only {taken}; the rest ran on the CPU"
                   + (f": {', '.join(coverage['cpu_ops'])}" if coverage.get("cpu_ops") else ""), err=True)
    mem = out["memory_mb"]
    click.echo(key_values([("delegate", f"{coverage['requested']}: {coverage.get('status')}"),
                           ("memory", f"init {fmt(mem['init'])} MiB, overall {fmt(mem['overall'])} MiB, "
                                      f"peak {fmt(mem['peak'])} MiB")]))

