"""``edgedeploy tune``: the fastest build of an int8 target whose accuracy drop is within a budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgedeploy.cli import ranges
from edgedeploy.cli.export_options import click_option, export_options
from edgedeploy.cli.options import (
    OutputPath,
    emit_json,
    json_option,
    model_choice,
    model_option,
    parse_model_options,
    target_choice,
)
from edgedeploy.cli.render import key_values, table
from edgedeploy.exporter.options import EXPORT_OPTIONS


@click.command()
@click.option("--target", required=True, type=target_choice, help="The int8 target to tune.")
@click_option(EXPORT_OPTIONS["val_dir"], required=True,
              help="Labeled validation data the drop is measured on (the model's task's layout).")
@click_option(EXPORT_OPTIONS["max_drop"], required=True,
              help="The budget: points of the metric a candidate may lose (upper bound of its paired interval).")
@click.option("--metric", type=click.Choice(["top1", "miou", "map"]), default=None,
              help="The metric the budget is in [default: the model's task's: top1, miou, or map].")
@click.option("--confidence", type=ranges.CONFIDENCE, default=0.95, show_default=True)
@click.option("--weights", default="sample", show_default=True,
              help="A checkpoint path or weights name (sample, sample-offgrid, imagenet, random).")
@click.option("--arch", type=model_choice, default="mobilenet_v2", show_default=True)
@click.option("--width", type=ranges.WIDTH, default=None)
@click.option("--resolution", type=ranges.RESOLUTION, default=None)
@click.option("--num-classes", type=ranges.NUM_CLASSES, default=None)
@model_option
@click.option("--mean", type=ranges.MEAN, nargs=3, default=None)
@click.option("--std", type=ranges.STD, nargs=3, default=None)
# Every candidate keeps these (weight granularity per-tensor for NPUs); the others are what tune varies.
@export_options("calib_dir", "calib_size", "weight_granularity", "io_dtype", "input_layout", helps={
    "calib_dir": "Calibration images or a calibration/*.json definition [default: the sample calib split].",
    "weight_granularity": "Kept by every candidate (per-tensor for NPUs).", "io_dtype": "Kept by every candidate.",
    "input_layout": "Kept by every candidate."})
@click.option("--synsets", type=click.Path(path_type=Path), default=None)
@click.option("--batch-size", type=click.IntRange(1, 1024), default=16, show_default=True)
@click.option("--runs", type=ranges.RUNS, default=50, show_default=True,
              help="Timed runs per accepted candidate (interleaved rounds).")
@click.option("--threads", type=ranges.THREADS, default=None)
@click.option("--max-workers", type=ranges.WORKERS, default=None,
              help="Build the candidates as Ray tasks on a local runtime of this many CPUs.")
@click.option("--ray-address", default=None, help="Build the candidates as Ray tasks on this cluster.")
@click.option("--out", "out_dir", type=OutputPath(folder=True), default=None,
              help="Output folder [default: edgedeploy-out/tune-<target>].")
@click.option("--force", is_flag=True, help="Rebuild and re-evaluate even when the cache has the result.")
@json_option
@click.pass_context
def tune(ctx: click.Context, as_json: bool, target: str, val_dir: Path, max_drop: float, metric: str | None,
         confidence: float, weights: str, arch: str, width: float | None, resolution: int | None,
         num_classes: int | None, model_option: tuple[str, ...], mean: tuple[float, ...] | None,
         std: tuple[float, ...] | None, options: dict[str, Any], synsets: Path | None, batch_size: int, runs: int,
         threads: int | None, max_workers: int | None, ray_address: str | None, out_dir: Path | None,
         force: bool) -> None:
    """Try TARGET's calibration methods, PTQ methods (cle, adaround, bias-correction) and diagnose's keep-float
    layers; keep the fastest build whose drop on --val is within --max-drop (upper confidence bound)."""
    from edgedeploy.core.sample_data import CALIB_DIR, data_root
    from edgedeploy.tune.engine import TuneRequest, run_tune

    model = {"arch": arch, **{k: v for k, v in (("width", width), ("resolution", resolution),
                                                 ("num_classes", num_classes)) if v is not None}, "weights": weights}
    if model_option:
        model["options"] = dict(parse_model_options(model_option))
    calib_dir = options.pop("calib_dir", None)
    calibration = {"data": str(Path(calib_dir).resolve() if calib_dir else data_root() / CALIB_DIR),
                   "size": options.pop("calib_size")}
    request = TuneRequest(
        target=target, val=val_dir, max_drop=max_drop, out_dir=out_dir or Path("edgedeploy-out") / f"tune-{target}",
        model=model, preprocessing={"mean": list(mean), "std": list(std)} if mean else {},
        calibration=calibration,
        evaluation={"batch_size": batch_size, **({"synsets": str(synsets)} if synsets else {})},
        fixed=options, metric=metric, confidence=confidence, runs=runs, threads=threads,
        max_workers=max_workers, ray_address=ray_address, force=force)
    record = run_tune(request, lambda name, stage: click.echo(f"tune: {name}: {stage}", err=True))
    if as_json:
        emit_json(record)
    else:
        rows = [[r["id"], r["describe"], r.get("accuracy", {}).get("drop"),
                 "[{:.2f}, {:.2f}]".format(*r["accuracy"]["interval"]) if r.get("accuracy", {}).get("interval") else "-",
                 r.get("p50_ms"), r["verdict"] + (" (kept)" if r.get("kept") else ""), r["why"]]
                for r in record["candidates"]]
        click.echo(table(["candidate", "options", "drop pts", "interval", "p50 ms", "verdict", "why"], rows))
        click.echo(key_values([("chosen", record["chosen"] or "none"), ("artifact", record["artifact"] or "-"),
                               ("record", str(Path(request.out_dir) / "tune.json"))]))
    if record["chosen"] is None:
        best = record["best"]
        click.echo(f"error: no candidate within {max_drop:g} pts of {record['metric']}"
                   + (f": the best, {best['id']}, lost {best['drop']:.2f} pts" if best else "")
                   + f" (record: {Path(request.out_dir) / 'tune.json'})", err=True)
        ctx.exit(1)
