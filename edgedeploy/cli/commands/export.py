"""``edgedeploy export``: one target, with parity and the precision proof."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import click

from edgedeploy.cli import ranges
from edgedeploy.cli.options import (
    calib_method_choice,
    emit_json,
    input_layout_choice,
    input_size_options,
    io_dtype_choice,
    json_option,
    model_choice,
    model_option,
    parse_model_options,
    resolution_from,
    split_list,
    target_choice,
    weight_granularity_choice,
)
from edgedeploy.cli.render import key_values
from edgedeploy.export.request import DEFAULT_PARITY_IMAGES

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
@click.option("--width", type=ranges.WIDTH, default=None, help="Width multiplier, 0.35-1.4 [default: the family's].")
@click.option("--resolution", type=ranges.RESOLUTION, default=None,
              help="Input size [default: the family's; mobilenet_v2: 224, a multiple of 32 in 96-512].")
@click.option("--num-classes", type=ranges.NUM_CLASSES, default=None, help="Class count [default: the family's].")
@model_option
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("artifacts"),
              show_default=True, help="Output folder.")
@click.option("--name", default=None, help="Artifact file stem [default: <family>_<width>_<resolution>].")
@click.option("--opset", type=ranges.opset_range(), default=17, show_default=True, help="ONNX opset.")
@click.option("--dynamic-batch", is_flag=True, help="Make the batch dimension dynamic (default: fixed batch 1).")
@click.option("--mean", type=ranges.MEAN, nargs=3, default=None, help="Override the weights' normalization mean (R G B).")
@click.option("--std", type=ranges.STD, nargs=3, default=None, help="Override the weights' normalization std (R G B).")
@click.option("--parity-data", type=click.Path(path_type=Path), default=None,
              help="Images for the parity check [default: the sample calib split].")
@click.option("--parity-images", type=ranges.PARITY_IMAGES, default=DEFAULT_PARITY_IMAGES, show_default=True,
              help="Images for fidelity and quantization cost (agreement with its 95% interval).")
@click.option("--parity-atol", type=ranges.ATOL, default=None, help="Max |logit diff| vs PyTorch [default: per target].")
@click.option("--parity-min-agreement", type=ranges.PERCENT, default=None,
              help="Min agreement with PyTorch (top-1, or per pixel), percent [default: per target]; for int8 "
                   "targets the floor that marks a model unusable, judged on the interval's upper end [50].")
@click.option("--parity-min-fidelity", "parity_min_fidelity_db", type=ranges.FIDELITY_DB, default=None,
              help="int8 targets: min SQNR (dB) of the artifact against its quantization simulated on the host "
                   "[default: 10].")
@click.option("--threads", type=ranges.THREADS, default=None, help="Threads for the parity run.")
@click.option("--calib", "calib_dir", type=click.Path(path_type=Path), default=None,
              help="Calibration images for int8 targets: a folder or a calibration/*.json definition "
                   "[default: the sample calib split].")
@click.option("--calib-size", type=ranges.IMAGES, default=200, show_default=True, help="Calibration images to use.")
@click.option("--calib-seed", type=ranges.SEED, default=0, show_default=True, help="Seed of the class-stratified sample.")
@click.option("--io-dtype", type=io_dtype_choice, default=None,
              help="Input/output dtype of integer targets [default: int8]; uint8 takes raw 0-255 pixels.")
@click.option("--calib-method", type=calib_method_choice, default=None,
              help="Activation ranges: onnx-int8 (ONNX Runtime) minmax, percentile, entropy [default: minmax]; "
                   "openvino-int8 (NNCF) mean-minmax, minmax, mean-quantile, histogram [default: mean-minmax]; "
                   "tflite-int8 has only min/max.")
@click.option("--max-drop", type=ranges.DROP, default=None,
              help="int8 targets: the accuracy requirement, max drop of the task's metric (top-1, mIoU) in points "
                   "on --val (fails the export when not met; openvino-int8 meets it with NNCF's accuracy control).")
@click.option("--val", "val_dir", type=click.Path(path_type=Path), default=None,
              help="Labeled images for --max-drop.")
@click.option("--keep-float", "keep_float", multiple=True, metavar="LAYER",
              help="int8 targets: keep this layer in float (repeatable; names from `edgedeploy diagnose`).")
@click.option("--input-layout", type=input_layout_choice, default=None,
              help="litert-* targets: nhwc (camera frames, no TRANSPOSE) or nchw (PyTorch's) [default: nhwc].")
@click.option("--weight-granularity", type=weight_granularity_choice, default=None,
              help="int8 targets: per-channel, or per-tensor for NPUs/EdgeTPU that need it [default: per-channel].")
@click.option("--ptq", "ptq", multiple=True, metavar="METHOD[,METHOD]",
              help="int8 targets: quantization methods applied to the PyTorch model first: cle (cross-layer "
                   "equalization), adaround (learned rounding), bias-correction; repeatable or comma-separated.")
@json_option
def export(as_json: bool, target: str, arch: str, width: float | None, resolution: int | None,
           num_classes: int | None, out_dir: Path, **kw: Any) -> None:
    """Export a model family (MobileNetV2 by default), a user module (--model) or an ONNX file (--from) to TARGET,
    check parity with the source model, write artifact + manifest."""
    from edgedeploy.devices import default_threads
    from edgedeploy.export.pipeline import export as run_export
    from edgedeploy.export.request import ExportRequest
    from edgedeploy.models import get_model
    from edgedeploy.models.weights import checkpoint_num_classes

    resolution = resolution_from(kw, resolution)
    onnx_file = kw["onnx_file"]
    if num_classes is None and kw["weights"] and not onnx_file:
        num_classes = checkpoint_num_classes(kw["weights"], arch)  # a fine-tuned checkpoint's own class count
    given = {"width": width, "resolution": resolution, "num_classes": num_classes}
    family = get_model(arch)
    request = ExportRequest(
        target=target,
        config=None if onnx_file else family.make_config(**{k: v for k, v in given.items() if v is not None},
                                                         **dict(parse_model_options(kw["model_option"]))),
        onnx=onnx_file, input_size=resolution if onnx_file else None,
        weights=kw["weights"] or family.default_weights, out_dir=out_dir, name=kw["name"], opset=kw["opset"],
        dynamic_batch=kw["dynamic_batch"], mean=kw["mean"], std=kw["std"],
        parity_data=kw["parity_data"], parity_images=kw["parity_images"],
        parity_max_abs_diff=kw["parity_atol"], parity_min_agreement=kw["parity_min_agreement"],
        parity_min_fidelity_db=kw["parity_min_fidelity_db"],
        threads=kw["threads"] or default_threads(),
        calib_dir=kw["calib_dir"], calib_size=kw["calib_size"], calib_seed=kw["calib_seed"], io_dtype=kw["io_dtype"],
        calib_method=kw["calib_method"], max_drop=kw["max_drop"], val_dir=kw["val_dir"],
        keep_float=tuple(kw["keep_float"]), input_layout=kw["input_layout"],
        weight_granularity=kw["weight_granularity"], ptq=split_list(kw["ptq"]),
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
