"""Options and helpers shared by the commands. Choices come from the registries, read when the
command line is parsed (not when this module is imported), so a registered target, runtime or
calibration method appears in ``--help`` and is accepted without editing the CLI."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import click

from edgedeploy.cli import ranges
from edgedeploy.core.jsonfile import json_text
from edgedeploy.models.architecture import Architecture
from edgedeploy.runtimes.gpu import GPU_PRECISIONS

__all__ = ["OutputPath", "RegistryChoice", "target_choice", "model_option", "parse_model_options", "model_choice", "split_list",
           "emit_json", "json_option", "progress", "ModelArgs", "model_options", "devices_option", "runtime_name"]


class ModelChoice(click.Choice):
    """A registered model family, or a user module's factory ``package.module:callable`` (imported on use)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, str) and ":" in value:
            from edgedeploy.models.modules import MODULE_ENTRY

            if MODULE_ENTRY.match(value):
                return value
            self.fail(f"{value!r}: expected a family name or package.module:callable", param, ctx)
        return super().convert(value, param, ctx)


class OutputPath(click.Path):
    """A folder (``--out``) or a file (``--junit``, ``--output``) edgedeploy will write: checked when the command
    line is parsed (edgedeploy.core.paths), so a FIFO, a device, /proc or a file where a folder belongs is one
    line and exit 3 before any work, never an error after a long build."""

    def __init__(self, folder: bool):
        super().__init__(file_okay=not folder, dir_okay=folder, path_type=Path)
        self.folder = folder

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from edgedeploy.core.paths import check_output_folder, output_file

        path = Path(value)
        return check_output_folder(path) if self.folder else output_file(path, param.name if param else "output")


class RegistryChoice(click.Choice):
    """A click.Choice whose choices are read from a registry each time they are needed."""

    def __init__(self, source: Callable[[], Sequence[str]]):
        self._source = source
        super().__init__([])

    @property  # type: ignore[override]
    def choices(self) -> Sequence[str]:
        return tuple(self._source())

    @choices.setter
    def choices(self, _value: Sequence[str]) -> None:
        pass  # set by click.Choice.__init__; the registry is the source


def _target_names() -> list[str]:
    from edgedeploy.exporter.targets import target_names

    return target_names()


def _model_names() -> list[str]:
    from edgedeploy.models import list_models

    return list_models()


def _inference_precisions() -> Sequence[str]:
    from edgedeploy.runtimes.base import INFERENCE_PRECISIONS

    return INFERENCE_PRECISIONS


target_choice = RegistryChoice(_target_names)
model_choice = type("ModelRegistryChoice", (ModelChoice, RegistryChoice), {})(_model_names)
inference_precision_choice = RegistryChoice(_inference_precisions)


def split_list(values: Sequence[str]) -> tuple[str, ...]:
    """Repeated and comma-separated option values as one tuple: --ptq cle,adaround --ptq bias-correction."""
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


def emit_json(obj: dict[str, Any]) -> None:
    click.echo(json_text(obj, indent=2, default=str))


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    def mark(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        ctx.ensure_object(dict)["json"] = value
        return value

    return click.option("--json", "as_json", is_flag=True, is_eager=True, callback=mark, expose_value=True,
                        help="Print one JSON object on stdout.")(f)


def progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (CI logs stay clean).
    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr, disable=None, leave=False)


def parse_model_options(values: Sequence[str]) -> tuple[tuple[str, Any], ...]:
    """``KEY=VALUE`` strings -> sorted (key, value) pairs, values read as YAML scalars (16 -> int)."""
    import yaml

    pairs = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{text!r}: expected KEY=VALUE (e.g. output_stride=16)", param_hint="--model-option")
        pairs[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return tuple(sorted(pairs.items()))


def input_size_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--input-shape / --example-input: a user module's input (either sets --resolution)."""
    f = click.option("--example-input", "example_input", type=click.Path(dir_okay=False), default=None,
                     help="A user module's example input (.npy or .pt tensor, 1x3xHxW): its shape sets the size.")(f)
    return click.option("--input-shape", "input_shape", default=None, metavar="1,3,H,W",
                        help="A user module's input shape (NCHW, batch 1, square): sets the size.")(f)


def resolution_from(shape_text: str | None, example: str | None, resolution: int | None) -> int | None:
    """The input size --input-shape or --example-input give (refused beside a different --resolution)."""
    from edgedeploy.core.errors import ConfigError
    from edgedeploy.models.modules import input_resolution

    if shape_text and example:
        raise ConfigError("give --input-shape or --example-input, not both")
    size = None
    if shape_text:
        try:
            dims = [int(d) for d in shape_text.replace("x", ",").split(",")]
        except ValueError:
            raise ConfigError(f"--input-shape {shape_text!r}: expected integers, e.g. 1,3,224,224") from None
        size = input_resolution(dims, f"--input-shape {shape_text}")
    elif example:
        size = input_resolution(_example_shape(example), f"--example-input {example}")
    if size is not None and resolution is not None and size != resolution:
        raise ConfigError(f"--resolution {resolution} disagrees with the input shape ({size}x{size})")
    return size if size is not None else resolution


def _example_shape(path: str) -> tuple[int, ...]:
    from pathlib import Path

    from edgedeploy.core.errors import InputFileError

    file = Path(path)
    if not file.is_file():
        raise InputFileError(f"{file}: example input not found")
    try:
        if file.suffix == ".npy":
            import numpy as np

            return tuple(np.load(file, allow_pickle=False).shape)
        import torch

        tensor = torch.load(file, map_location="cpu", weights_only=True)
        return tuple(tensor.shape)
    except Exception as exc:  # numpy and torch raise many types for a bad file
        raise InputFileError(f"{file}: not a readable .npy array or torch tensor ({type(exc).__name__})") from None


def model_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--model-option", "model_option", multiple=True, metavar="KEY=VALUE",
                        help="A model family's own option (repeatable), e.g. output_stride=16 for "
                             "deeplabv3_mobilenet_v2.")(f)


@dataclass(frozen=True)
class ModelArgs:
    """What the command line says about the model to load: which PyTorch architecture its weights belong to, the
    preprocessing of a file without a manifest, and the runtime's knobs."""

    arch: str
    input_shape: str | None
    example_input: str | None
    model_option: tuple[str, ...]
    width: float | None
    resolution: int | None
    num_classes: int | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    raw_pixels: bool
    threads: int | None
    no_verify: bool
    no_xnnpack: bool
    inference_precision: str
    gpu_fallback: bool
    gpu_precision: str

    def load_options(self, default_threads: int) -> Any:
        """The runtime's load options (``default_threads`` where --threads was not given)."""
        from edgedeploy.runtimes.base import LoadOptions

        return LoadOptions(
            threads=self.threads or default_threads, mean=self.mean, std=self.std, raw_pixels=self.raw_pixels,
            verify=not self.no_verify, xnnpack=not self.no_xnnpack, inference_precision=self.inference_precision,
            gpu_fallback=self.gpu_fallback, gpu_precision=self.gpu_precision,
            architecture=Architecture(self.arch, self.width,
                                      resolution_from(self.input_shape, self.example_input, self.resolution),
                                      self.num_classes, parse_model_options(self.model_option)),
        )


def model_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options that say how to load a model: architecture (PyTorch) and preprocessing (no manifest); the
    command gets them as one ``model_args`` (a ModelArgs)."""
    names = [f.name for f in fields(ModelArgs)]

    @functools.wraps(command)
    def with_model_args(*args: Any, **params: Any) -> Any:
        return command(*args, model_args=ModelArgs(**{n: params.pop(n) for n in names}), **params)

    options = [
        click.option("--arch", "--model", "arch", type=model_choice, default="mobilenet_v2", show_default=True,
                     help="Model family (PyTorch weights; `edgedeploy list` shows the registry), or a user "
                          "module's factory package.module:callable."),
        input_size_options,
        click.option("--model-option", "model_option", multiple=True, metavar="KEY=VALUE",
                     help="The family's own option (repeatable), e.g. output_stride=16 (PyTorch weights)."),
        click.option("--width", type=ranges.WIDTH, default=None,
                     help="Width multiplier (PyTorch weights) [default: the family's, mobilenet_v2: 1.0]."),
        click.option("--resolution", type=ranges.RESOLUTION, default=None,
                     help="Input size (PyTorch weights) [default: the family's, mobilenet_v2: 224]."),
        click.option("--num-classes", type=ranges.NUM_CLASSES, default=None,
                     help="Class count (PyTorch weights) [default: the family's, mobilenet_v2: 1000]."),
        click.option("--mean", type=ranges.MEAN, nargs=3, default=None, help="Normalization mean (R G B), for models without a manifest."),
        click.option("--std", type=ranges.STD, nargs=3, default=None, help="Normalization std (R G B), for models without a manifest."),
        click.option("--raw-pixels", is_flag=True, help="Feed raw 0-255 pixels (models with normalization folded in)."),
        click.option("--threads", type=ranges.THREADS, default=None, help="Inference threads [default: the device's]."),
        click.option("--no-verify", is_flag=True,
                     help="Use the model even if its files no longer match the sha256 in its manifest."),
        click.option("--no-xnnpack", is_flag=True, help="LiteRT: run the builtin kernels without the XNNPACK delegate."),
        click.option("--inference-precision", type=inference_precision_choice, default="f32",
                     show_default=True, help="OpenVINO: CPU plugin precision (auto: the plugin's own choice)."),
        click.option("--gpu-fallback", is_flag=True,
                     help="--device gpu: run ops without a GPU kernel on the CPU (listed in the result, which then says "
                          "fully_accelerated: false) instead of refusing the run."),
        click.option("--gpu-precision", type=click.Choice(GPU_PRECISIONS), default="fp16", show_default=True,
                     help="--device gpu, LiteRT: fp16 (the GPU accelerator's default: fp16 where the adapter has it) "
                          "or fp32 (enforced)."),
    ]
    for option in reversed(options):
        with_model_args = option(with_model_args)
    return with_model_args


def devices_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--devices", "devices_file", type=click.Path(dir_okay=False), default=None,
                        help="A YAML file of extra device profiles [default: $EDGEDEPLOY_DEVICES].")(f)


def verified_text(verified: bool | None) -> str:
    """How a model's manifest check reads in a table."""
    return {True: "yes (every file matches its manifest's sha256)", False: "NO (--no-verify: files not checked)",
            None: "no manifest to check against"}[verified]


def runtime_name(model: str) -> str:
    from edgedeploy.runtimes import runtime_for

    return runtime_for(model).name

