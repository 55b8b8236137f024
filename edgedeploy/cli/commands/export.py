"""``edgedeploy export``: one target, with parity and the precision proof."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from edgedeploy.cli import ranges
from edgedeploy.core import limits
from edgedeploy.cli.export_options import export_options
from edgedeploy.cli.options import (
    OutputPath,
    emit_json,
    input_size_options,
    json_option,
    model_choice,
    model_option,
    parse_model_options,
    resolution_from,
    target_choice,
)
from edgedeploy.cli.render import key_values

log = logging.getLogger("edgedeploy")


@click.command()
@click.option("--target", "target", required=True, type=target_choice, help="Artifact format.")
@click.option("--weights", default=None,
              help="A checkpoint path (torchvision or timm keys), or: sample (shared data), imagenet (torchvision, "
                   "downloads), random, module (a user module's own parameters) [default: sample; module for --model].")
@click.option("--arch", "--model", "arch", type=model_choice, default="mobilenet_v2", show_default=True,
              help="Model family (`edgedeploy list` shows the registry), or a user module's factory "
                   "package.module:callable (give --input-shape).")
@click.option("--from", "onnx_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Export this ONNX model instead (ONNX-based targets; give --mean/--std).")
@input_size_options
@click.option("--width", type=ranges.WIDTH, default=None, help=f"Width multiplier, {limits.MIN_WIDTH}-{limits.MAX_WIDTH} [default: the family's].")
@click.option("--resolution", type=ranges.RESOLUTION, default=None,
              help="Input size [default: the family's; mobilenet_v2: 224, a multiple of 32 in 96-512].")
@click.option("--num-classes", type=ranges.NUM_CLASSES, default=None, help="Class count [default: the family's].")
@model_option
@click.option("--out", "out_dir", type=OutputPath(folder=True), default=Path("artifacts"),
              show_default=True, help="Output folder.")
@click.option("--name", default=None, help="Artifact file stem [default: <family>_<width>_<resolution>].")
@click.option("--mean", type=ranges.MEAN, nargs=3, default=None, help="Override the weights' normalization mean (R G B).")
@click.option("--std", type=ranges.STD, nargs=3, default=None, help="Override the weights' normalization std (R G B).")
@export_options()
@json_option
def export(as_json: bool, target: str, weights: str | None, arch: str, onnx_file: Path | None,
           input_shape: str | None, example_input: str | None, width: float | None, resolution: int | None,
           num_classes: int | None, model_option: tuple[str, ...], out_dir: Path, name: str | None,
           mean: tuple[float, ...] | None, std: tuple[float, ...] | None, options: dict[str, Any]) -> None:
    """Export a model family (MobileNetV2 by default), a user module (--model) or an ONNX file (--from) to TARGET,
    check parity with the source model, write artifact + manifest."""
    from edgedeploy.devices import default_threads
    from edgedeploy.exporter.pipeline import export as run_export
    from edgedeploy.exporter.request import ExportRequest
    from edgedeploy.models import get_model
    from edgedeploy.models.architecture import Architecture
    from edgedeploy.models.weights import checkpoint_num_classes

    resolution = resolution_from(input_shape, example_input, resolution)
    if num_classes is None and weights and not onnx_file:
        num_classes = checkpoint_num_classes(weights, arch)  # a fine-tuned checkpoint's own class count
    architecture = Architecture(arch, width, resolution, num_classes, parse_model_options(model_option))
    family = get_model(arch)
    request = ExportRequest(
        target=target,
        config=None if onnx_file else architecture.config(),
        onnx=onnx_file, input_size=resolution if onnx_file else None,
        weights=weights or family.default_weights, out_dir=out_dir, name=name, mean=mean, std=std,
        **{**options, "threads": options.get("threads") or default_threads()},
    )
    result = run_export(request, on_step=lambda step: log.info("%s ...", step)).to_dict()
    if as_json:
        emit_json(result)
        return
    parity = result["parity"]
    click.echo(f"exported {target} -> {result['path']}")
    click.echo(key_values([
        ("size", f"{result['size_bytes'] / 2**20:.2f} MiB"),
        ("sha256", result["sha256"]),
        *([("onnx nodes", f"{result['onnx_nodes_before_simplify']} -> {result['onnx_nodes_after_simplify']} "
                          "after onnxsim")] if "onnx_nodes_before_simplify" in result else []),
        *([("route", result["converter"])] if result.get("converter") else []),
        *([("ptq", ", ".join(result["ptq"]["methods"]))] if result.get("ptq") else []),
        *parity_rows(parity),
        *([("requirement", requirement_text(result["accuracy_requirement"]))]
          if result.get("accuracy_requirement") else []),
        ("manifest", result["manifest"]),
        *([("log", result["log"])] if result.get("log") else []),
        ("time", f"{result['seconds']:.1f} s"),
    ]))



def parity_rows(parity: dict[str, Any]) -> list[tuple[str, str]]:
    """Fidelity (quantized targets: against the host simulation) and the cost against the float model."""
    interval = parity.get("agreement_interval")
    ci = f" [{interval['low']:.1f}, {interval['high']:.1f}]" if interval else ""
    cost = (f"{parity['agreement_of']} {parity['agreement']:.1f}%{ci} vs float, max |diff| "
            f"{parity['max_abs_diff']:.3g}, on {parity['images']} images")
    fidelity = parity.get("fidelity") or {}
    if "sqnr_db" in fidelity:
        return [("fidelity", f"{fidelity['sqnr_db']:.1f} dB from its simulated quantization "
                             f"(>= {parity['min_fidelity_db_allowed']:.0f} dB)"), ("quantization cost", cost)]
    if "skipped" in fidelity:
        return [("fidelity", f"not checked: {fidelity['skipped']}"), ("quantization cost", cost)]
    return [("parity", cost)]


def requirement_text(requirement: dict[str, Any]) -> str:
    drop = requirement["paired"]["drop"]
    return (f"{requirement['metric']} {requirement['artifact']:.2f} vs float {requirement['float']:.2f}: drop "
            f"{drop['estimate']:.2f} [{drop['low']:.2f}, {drop['high']:.2f}] <= {requirement['max_drop']} on "
            f"{requirement['images']} images")
