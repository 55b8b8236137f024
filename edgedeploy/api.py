"""The Python API: the engine the CLI runs, typed, for notebooks and scripts.

    import edgedeploy
    result = edgedeploy.export(my_module, target="tflite-int8", example_input=torch.zeros(1, 3, 224, 224))
    runner = edgedeploy.load(result.path)          # verifies the files against the manifest
    scores = runner.predict(edgedeploy.preprocess_images(["cat.jpg"], runner))
    metrics = edgedeploy.evaluate(result.path, "val/", reference=my_module)

``model`` is an ``nn.Module`` (any: it becomes a model family of its own, named by its class and
parameters), a registered family name (``"mobilenet_v2"``), a factory ``"package.module:callable"``, an
``.onnx`` file to export (ONNX in), or for ``evaluate``/``bench``/``load`` an artifact or weights name.
Errors are the CLI's typed errors (:mod:`edgedeploy.core.errors`), each with the exit code the CLI uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import ConfigError
from edgedeploy.exporter.options import EXPORT_OPTIONS
from edgedeploy.exporter.pipeline import ExportResult
from edgedeploy.exporter.request import ExportRequest
from edgedeploy.measure.bench import BenchResult
from edgedeploy.models import MODELS, ModelConfig, get_model
from edgedeploy.models.architecture import Architecture
from edgedeploy.models.modules import INSTANCE_FAMILIES, input_resolution
from edgedeploy.runtimes import LoadOptions, Runner, load_runner
from edgedeploy.tasks import EvalResult

__all__ = ["export", "load", "evaluate", "bench", "preprocess_images"]

# What the keyword arguments may set: the declared export options (calib_dir has an argument of its own, calib)
# and the artifact's name.
_REQUEST_FIELDS = (set(EXPORT_OPTIONS) - {"calib_dir"}) | {"name"}
# The model's size (a family's, or checked against a module's own).
_SIZE_FIELDS = {"width", "resolution", "num_classes"}


def export(
    model: Any,
    target: str,
    *,
    example_input: Any = None,
    input_shape: Sequence[int] | None = None,
    weights: str | Path | None = None,
    calib: str | Path | None = None,
    preprocessing: dict[str, Sequence[float]] | None = None,
    out: str | Path = "artifacts",
    **options: Any,
) -> ExportResult:
    """Export ``model`` to ``target`` with the parity check and precision proof; the artifact and its manifest
    land in ``out``. ``example_input`` (a tensor or array, 1x3xHxW) or ``input_shape`` give a module's input
    size (``width``, ``resolution``, ``num_classes``: a family's size); ``preprocessing={"mean": (...), "std": (...)}`` its normalization (default: the weights' own, ImageNet's
    for a module); ``options`` are the CLI's export options by their ExportRequest names (io_dtype,
    weight_granularity, ptq, keep_float, parity_min_agreement, threads, ...)."""
    unknown = sorted(set(options) - _REQUEST_FIELDS - _SIZE_FIELDS)
    if unknown:
        known = ", ".join(sorted(_REQUEST_FIELDS | _SIZE_FIELDS))
        raise ConfigError(f"export() got unknown option {', '.join(unknown)}; known: {known}")
    sizes = {k: options.pop(k) for k in list(options) if k in _SIZE_FIELDS}
    size = _size(example_input, input_shape)
    if size is not None:
        sizes["resolution"] = size
    mean, std = _normalization(preprocessing)
    common = dict(target=target, out_dir=Path(out), mean=mean, std=std,
                  calib_dir=Path(calib) if calib is not None else None, **options)
    if isinstance(model, (str, Path)) and str(model).endswith(".onnx"):
        request = ExportRequest(config=None, onnx=Path(model), input_size=size, **common)
    else:
        config, default_weights = _config(model, sizes, str(weights) if weights is not None else None)
        request = ExportRequest(config=config, weights=str(weights) if weights is not None else default_weights,
                                **common)
    from edgedeploy.exporter.pipeline import export as run_export

    return run_export(request)


def load(model: str | Path | Any, *, threads: int = 1, verify: bool = True,
         preprocessing: dict[str, Sequence[float]] | None = None, input_shape: Sequence[int] | None = None,
         accelerator: str = "cpu", gpu_fallback: bool = False, gpu_precision: str = "fp16") -> Runner:
    """A runner for ``model`` (an artifact, checked against its manifest unless ``verify=False``; a weights name;
    an ``nn.Module``) with ``predict(images)`` and ``infer(tensor)``. ``accelerator="gpu"`` loads an artifact on the
    GPU (docs/gpu.md): ``gpu_fallback`` lets ops without a GPU kernel run on the CPU, ``gpu_precision`` is fp16
    (the accelerator's default) or fp32."""
    mean, std = _normalization(preprocessing)
    if accelerator not in ("cpu", "gpu"):
        raise ConfigError(f"accelerator must be cpu or gpu, got {accelerator!r}")
    if isinstance(model, (str, Path)) and not _is_family(str(model)):
        return load_runner(str(model), LoadOptions(threads=threads, verify=verify, mean=mean, std=std,
                                                   accelerator=accelerator, gpu_fallback=gpu_fallback,
                                                   gpu_precision=gpu_precision))
    if accelerator != "cpu":
        raise ConfigError("accelerator='gpu' loads an exported artifact; PyTorch models run on the CPU here")
    size = _size(None, input_shape)
    config, weights = _config(model, {"resolution": size} if size is not None else {})
    options = LoadOptions(threads=threads, mean=mean, std=std, architecture=Architecture(
        config.arch, resolution=config.resolution, num_classes=config.num_classes))
    return load_runner(weights, options, runtime="torch")


def evaluate(model: Any, data: str | Path, *, reference: Any = None, limit: int | None = None, threads: int = 1,
             **load_kwargs: Any) -> EvalResult:
    """The task's metrics of ``model`` on ``data`` (top-1/top-5, or mIoU and pixel accuracy), and with
    ``reference`` (any model :func:`load` takes) the agreement with it."""
    from edgedeploy.measure.evaluate import evaluate as run_evaluate
    from edgedeploy.tasks import get_task

    runner = model if isinstance(model, Runner) else load(model, threads=threads, **load_kwargs)
    ref = None if reference is None else reference if isinstance(reference, Runner) else load(
        reference, threads=threads, **load_kwargs)
    dataset = get_task(runner.io.task).open_dataset(Path(data)).subset(limit)
    return run_evaluate(runner, dataset, ref)


def bench(model: Any, *, runs: int = 100, warmup: int = 10, threads: int = 1, **load_kwargs: Any) -> BenchResult:
    """Latency of ``model`` in this process (median, percentiles, throughput, memory)."""
    from edgedeploy.measure.bench import benchmark

    runner = model if isinstance(model, Runner) else load(model, threads=threads, **load_kwargs)
    return benchmark(runner, runs, warmup)


def preprocess_images(paths: Sequence[str | Path], runner: Runner) -> np.ndarray:
    """Image files as ``runner.predict`` takes them (its manifest's resize, crop and normalization)."""
    from edgedeploy.data.preprocess import load_image, preprocess

    return np.stack([preprocess(load_image(p), runner.io.preprocessing) for p in paths])


def _is_family(name: str) -> bool:
    return name in MODELS or (":" in name and not Path(name).exists())


def _size(example_input: Any, input_shape: Sequence[int] | None) -> int | None:
    if example_input is not None and input_shape is not None:
        raise ConfigError("give example_input or input_shape, not both")
    if example_input is not None:
        shape = getattr(example_input, "shape", None)
        if shape is None:
            raise ConfigError(f"example_input is a {type(example_input).__name__}; expected a tensor or array")
        return input_resolution(tuple(shape))
    return input_resolution(tuple(input_shape), "input_shape") if input_shape is not None else None


def _normalization(preprocessing: dict[str, Sequence[float]] | None) -> tuple[Any, Any]:
    if not preprocessing:
        return None, None
    unknown = sorted(set(preprocessing) - {"mean", "std"})
    if unknown or set(preprocessing) != {"mean", "std"}:
        raise ConfigError("preprocessing takes mean and std (R, G, B), both")
    return tuple(float(v) for v in preprocessing["mean"]), tuple(float(v) for v in preprocessing["std"])


def _config(model: Any, sizes: dict[str, Any], weights: str | None = None) -> tuple[ModelConfig, str]:
    """A model's config and default weights: an nn.Module registers a family of its own; a checkpoint's
    classifier gives the class count."""
    import torch

    from edgedeploy.models.weights import checkpoint_num_classes

    if isinstance(model, torch.nn.Module):
        family = INSTANCE_FAMILIES.family_of(model)
    elif isinstance(model, str):
        family = get_model(model)
    else:
        raise ConfigError(f"model is a {type(model).__name__}; expected an nn.Module, a family name, a "
                          "package.module:callable factory or a file path")
    classes = checkpoint_num_classes(weights, family.name) if weights is not None else None
    if classes is not None:
        sizes = {"num_classes": classes, **sizes}
    return family.make_config(**sizes), family.default_weights
