"""``edgedeploy tune``: the fastest build of an int8 target whose accuracy drop is within a budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgedeploy.cli import ranges
from edgedeploy.cli.options import (
    emit_json,
    input_layout_choice,
    io_dtype_choice,
    json_option,
    model_choice,
    model_option,
    parse_model_options,
    target_choice,
    weight_granularity_choice,
)
from edgedeploy.cli.render import key_values, table


@click.command()
@click.option("--target", required=True, type=target_choice, help="The int8 target to tune.")
@click.option("--val", "val_dir", type=click.Path(path_type=Path), required=True,
              help="Labeled validation data the drop is measured on (the model's task's layout).")
@click.option("--max-drop", type=ranges.DROP, required=True,
              help="The budget: points of the metric a candidate may lose (upper bound of its paired interval).")
@click.option("--metric", type=click.Choice(["top1", "miou"]), default=None,
              help="The metric the budget is in [default: the model's task's: top1, or miou].")
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
@click.option("--calib", "calib_dir", type=click.Path(path_type=Path), default=None,
              help="Calibration images or a calibration/*.json definition [default: the sample calib split].")
@click.option("--calib-size", type=ranges.IMAGES, default=200, show_default=True)
@click.option("--weight-granularity", type=weight_granularity_choice, default=None,
              help="Kept by every candidate (per-tensor for NPUs).")
@click.option("--io-dtype", type=io_dtype_choice, default=None, help="Kept by every candidate.")
@click.option("--input-layout", type=input_layout_choice, default=None, help="Kept by every candidate.")
@click.option("--synsets", type=click.Path(path_type=Path), default=None)
@click.option("--batch-size", type=click.IntRange(1, 1024), default=16, show_default=True)
@click.option("--runs", type=ranges.RUNS, default=50, show_default=True,
              help="Timed runs per accepted candidate (interleaved rounds).")
@click.option("--threads", type=ranges.THREADS, default=None)
@click.option("--max-workers", type=ranges.WORKERS, default=None,
              help="Build the candidates as Ray tasks on a local runtime of this many CPUs.")
@click.option("--ray-address", default=None, help="Build the candidates as Ray tasks on this cluster.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder [default: edgedeploy-out/tune-<target>].")
@click.option("--force", is_flag=True, help="Rebuild and re-evaluate even when the cache has the result.")
@json_option
@click.pass_context
def tune(ctx: click.Context, as_json: bool, target: str, val_dir: Path, max_drop: float, out_dir: Path | None,
         **kw: Any) -> None:
    """Try TARGET's calibration methods, PTQ methods (cle, adaround, bias-correction) and diagnose's keep-float
    layers; keep the fastest build whose drop on --val is within --max-drop (upper confidence bound)."""
    from edgedeploy.tune.engine import TuneRequest, run_tune

    model = {"arch": kw["arch"], **{k: kw[k] for k in ("width", "resolution", "num_classes") if kw[k] is not None},
             "weights": kw["weights"]}
    if kw["model_option"]:
        model["options"] = dict(parse_model_options(kw["model_option"]))
    calibration = {"data": str(Path(kw["calib_dir"]).resolve()), "size": kw["calib_size"]} if kw["calib_dir"] else None
    if calibration is None:
        from edgedeploy.core.sample_data import CALIB_DIR, data_root

        calibration = {"data": str(data_root() / CALIB_DIR), "size": kw["calib_size"]}
    fixed = {k: kw[k] for k in ("weight_granularity", "io_dtype", "input_layout") if kw[k] is not None}
    request = TuneRequest(
        target=target, val=val_dir, max_drop=max_drop, out_dir=out_dir or Path("edgedeploy-out") / f"tune-{target}",
        model=model, preprocessing={"mean": list(kw["mean"]), "std": list(kw["std"])} if kw["mean"] else {},
        calibration=calibration,
        evaluation={"batch_size": kw["batch_size"], **({"synsets": str(kw["synsets"])} if kw["synsets"] else {})},
        fixed=fixed, metric=kw["metric"], confidence=kw["confidence"], runs=kw["runs"], threads=kw["threads"],
        max_workers=kw["max_workers"], ray_address=kw["ray_address"], force=kw["force"])
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
