"""``edgedeploy eval``: the model's task's metrics on a data set, optionally against a reference model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from edgedeploy.cli import ranges
from edgedeploy.cli.options import (
    ModelArgs,
    OutputPath,
    devices_option,
    emit_json,
    json_option,
    model_options,
    progress,
    verified_text,
)
from edgedeploy.cli.render import execution_text, fmt, key_values


@click.command("eval")
@click.argument("model")
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="Labeled data in the model's task's layout: classification <wnid>/<image>; segmentation images/ + "
                   "masks/ or a PASCAL VOC folder (its val split, or an ImageSets/Segmentation/<split>.txt); "
                   "detection instances.json + images/ (COCO).")
@click.option("--annotations", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Detection: a COCO annotations json naming the images in --data [default: --data/instances.json].")
@click.option("--synsets", type=click.Path(path_type=Path), default=None,
              help="Classification: wnid list giving class indices [default: synsets.txt beside --data, else sorted "
                   "folders].")
@click.option("--ignore-index", type=click.IntRange(0, 65535), default=None,
              help="Segmentation: the mask value that is not scored [default: 255, VOC's boundary label].")
@click.option("--mask-format", type=click.Choice(["palette", "label-ids"]), default=None,
              help="Segmentation: palette (VOC's indexed PNGs) or label-ids (grayscale IDs, Cityscapes/ADE20K style) "
                   "[default: either].")
@click.option("--save-masks", type=OutputPath(folder=True), default=None,
              help="Segmentation: write each image's predicted class map, colour-coded (VOC palette), to this folder.")
@click.option("--save-detections", type=OutputPath(folder=True), default=None,
              help="Detection: write each image with its detections drawn (class name and score) to this folder.")
@click.option("--limit", type=ranges.IMAGES, default=None, help="Evaluate the first N images only.")
@click.option("--reference", default=None,
              help="Compare with this model: agreement and logit differences [default with --device gpu: the same "
                   "MODEL on this host's CPU].")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=16, show_default=True)
@click.option("--device", default="cpu", show_default=True,
              help="Where MODEL runs: cpu, gpu, or arm64-emu (LiteRT's aarch64 build under qemu); "
                   "--reference always runs on this host's CPU.")
@devices_option
@model_options
@json_option
def eval_cmd(as_json: bool, model: str, data: Path, annotations: Path | None, synsets: Path | None,
             ignore_index: int | None,
             mask_format: str | None, save_masks: Path | None, save_detections: Path | None, limit: int | None, reference: str | None,
             batch_size: int, device: str, devices_file: str | None, model_args: ModelArgs) -> None:
    """Metrics of MODEL (a model file or weights name) on a data set: top-1/top-5 for classifiers, mIoU and
    pixel accuracy for segmentation models, COCO mAP for detectors."""
    from edgedeploy.core.errors import ConfigError
    from edgedeploy.devices import default_threads, get_device
    from edgedeploy.measure.evaluate import evaluate
    from edgedeploy.measure.on_device import eval_runner
    from edgedeploy.measure.predictions import saved_predictions
    from edgedeploy.runtimes import load_runner
    from edgedeploy.tasks import DataFormat, get_task

    dev = get_device(device, devices_file)
    options = model_args.load_options(dev.default_threads())
    runner = eval_runner(model, dev, options)
    if reference is None and dev.accelerator == "gpu":
        reference = model  # a GPU run is judged against the same file on the CPU
    task = get_task(runner.io.task)
    dataset = task.open_dataset(data, DataFormat(synsets, ignore_index, mask_format, annotations)).subset(limit)
    ref_runner = load_runner(reference, model_args.load_options(default_threads())) \
        if reference else None
    if save_masks and save_detections:
        raise ConfigError("--save-masks and --save-detections: give one (a model predicts masks or boxes)")
    saved, kind = (save_detections, "detections") if save_detections else (save_masks, "masks")
    with progress(len(dataset), "eval") as bar, saved_predictions(task, saved, runner.io, kind) as writer:
        result = evaluate(runner, dataset, ref_runner, batch_size, on_progress=bar.update, on_scores=writer)
    out = {"model": model, "runtime": runner.runtime, "device": dev.name, "task": task.name, **result.to_dict(),
           "data": str(data), "classes_from": dataset.class_source, "threads": options.threads,
           "execution": runner.execution(), "versions": runner.versions(),
           "verified": runner.verification.verified if runner.verification else None}
    if saved:
        out[kind] = str(saved)
    if reference:
        out["reference"] = reference
        out["reference_device"] = "cpu"
        out["reference_verified"] = ref_runner.verification.verified if ref_runner and ref_runner.verification else None
    if as_json:
        emit_json(out)
        return
    rows: list[tuple[str, Any]] = [("model", f"{model} ({runner.runtime}, {task.name})"),
                                   *([("execution", execution_text(out["execution"]))] if dev.accelerator == "gpu"
                                     else []),
                                   ("images", f"{result.n} ({result.skipped} skipped)")]
    rows += [(name, f"{fmt(value)} %" if isinstance(value, float) else fmt(value))
             for name, value in result.metrics.items() if not isinstance(value, dict) and name not in ("kl", "cosine")]
    if reference:
        rows += [("reference", f"{reference} (this host's CPU)"), (task.agreement_label, f"{fmt(result.agreement)} %"),
                 *[(name, result.metrics[name]) for name in ("kl", "cosine") if name in result.metrics],
                 ("max |diff|", result.max_abs_diff)]
    if saved:
        rows.append((kind, str(saved)))
    rows.append(("verified", verified_text(out["verified"])))
    rows.append(("time", f"{result.seconds:.1f} s"))
    click.echo(key_values(rows))
