"""``edgedeploy eval``: accuracy on an image folder, optionally against a reference model."""

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
    verified_text,
)
from edgedeploy.cli.render import fmt, key_values


@click.command("eval")
@click.argument("model")
@click.option("--data", type=click.Path(path_type=Path), required=True, help="Image folder (<wnid>/<image> layout).")
@click.option("--synsets", type=click.Path(path_type=Path), default=None,
              help="wnid list giving class indices [default: synsets.txt beside --data, else sorted folders].")
@click.option("--limit", type=click.IntRange(1), default=None, help="Evaluate the first N images only.")
@click.option("--reference", default=None, help="Compare with this model: agreement, KL, cosine.")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=16, show_default=True)
@click.option("--device", default="cpu", show_default=True,
              help="Where MODEL runs: cpu, gpu, or arm64-emu (LiteRT's aarch64 build under qemu); "
                   "--reference always runs on this host's CPU.")
@devices_option
@model_options
@json_option
def eval_cmd(as_json: bool, model: str, data: Path, synsets: Path | None, limit: int | None, reference: str | None,
             batch_size: int, device: str, devices_file: str | None, **kw: Any) -> None:
    """Accuracy of MODEL (a .onnx/.pth file or weights name) on an image folder."""
    from edgedeploy.backends import load_runner
    from edgedeploy.data.datasets import ImageFolder
    from edgedeploy.devices import default_threads, get_device
    from edgedeploy.measure.evaluate import evaluate
    from edgedeploy.measure.on_device import eval_runner

    dev = get_device(device, devices_file)
    options = load_options(kw, kw["threads"] or dev.default_threads())
    runner = eval_runner(model, dev, options)
    ref_runner = load_runner(reference, load_options(kw, kw["threads"] or default_threads())) \
        if reference else None
    dataset = ImageFolder.open(data, synsets).subset(limit)
    with progress(len(dataset), "eval") as bar:
        result = evaluate(runner, dataset, ref_runner, batch_size, on_progress=bar.update)
    out = {"model": model, "runtime": runner.runtime, "device": dev.name, **result.to_dict(), "data": str(data),
           "classes_from": dataset.class_source, "threads": options.threads, "execution": runner.execution(),
           "versions": runner.versions(), "verified": runner.verification.verified if runner.verification else None}
    if reference:
        out["reference"] = reference
        out["reference_verified"] = ref_runner.verification.verified if ref_runner and ref_runner.verification else None
    if as_json:
        emit_json(out)
        return
    rows = [("model", f"{model} ({runner.runtime})"), ("images", f"{result.n} ({result.skipped} skipped)"),
            ("top-1", f"{fmt(result.top1)} %"), ("top-5", f"{fmt(result.top5)} %")]
    if reference:
        rows += [("reference", reference), ("agreement", f"{fmt(result.agreement)} %"), ("mean KL", result.kl),
                 ("mean cosine", result.cosine), ("max |diff|", result.max_abs_diff)]
    rows.append(("verified", verified_text(out["verified"])))
    rows.append(("time", f"{result.seconds:.1f} s"))
    click.echo(key_values(rows))

