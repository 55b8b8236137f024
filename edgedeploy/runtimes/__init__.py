"""The runtime registry: one row per runtime; the model file's suffix picks the row.

Backends are imported lazily, so a missing optional runtime only matters when a
model that needs it is loaded, and the error then names the extra to install.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedeploy.errors import ConfigError, DependencyError, InputFileError
from edgedeploy.runtimes.base import LoadOptions, Runner

__all__ = ["RuntimeInfo", "RUNTIMES", "WEIGHT_NAMES", "runtime_for", "load_runner", "inspect_model", "open_layer_taps", "LoadOptions", "Runner"]


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    suffixes: tuple[str, ...]
    # "module:Class", imported on first use
    entry: str
    requires: str
    # "module:function" that describes a model file of this runtime (edgedeploy inspect)
    inspector: str
    extra: str | None = None
    description: str = ""
    # "module:Class" that reads every layer's output (edgedeploy diagnose); None: not offered
    layer_taps: str | None = None


RUNTIMES: dict[str, RuntimeInfo] = {
    r.name: r
    for r in (
        RuntimeInfo("torch", (".pth", ".pt"), "edgedeploy.runtimes.torch_runtime:TorchRunner", "torch",
                    "edgedeploy.inspect:inspect_torch",
                    description="PyTorch eager (weights file or name: sample, imagenet, random)"),
        RuntimeInfo("onnxruntime", (".onnx",), "edgedeploy.runtimes.onnxruntime_runtime:OnnxRuntimeRunner",
                    "onnxruntime", "edgedeploy.inspect:inspect_onnx", description="ONNX Runtime, CPU execution provider",
                    layer_taps="edgedeploy.layers:OnnxRuntimeLayerTaps"),
        RuntimeInfo("litert", (".tflite",), "edgedeploy.runtimes.litert_runtime:LiteRTRunner", "ai-edge-litert",
                    "edgedeploy.inspect:inspect_tflite", extra="tflite",
                    description="LiteRT (TFLite) interpreter, XNNPACK delegate unless --no-xnnpack",
                    layer_taps="edgedeploy.layers:LiteRTLayerTaps"),
        RuntimeInfo("openvino", (".xml",), "edgedeploy.runtimes.openvino_runtime:OpenVINORunner", "openvino",
                    "edgedeploy.inspect:inspect_openvino", extra="openvino",
                    description="OpenVINO CPU plugin, latency hint, explicit inference precision",
                    layer_taps="edgedeploy.layers:OpenVINOLayerTaps"),
    )
}

# Names that --weights accepts; eval/bench treat them as PyTorch models.
WEIGHT_NAMES = ("sample", "imagenet", "random")


def runtime_for(model: str) -> RuntimeInfo:
    if model in WEIGHT_NAMES:
        return RUNTIMES["torch"]
    suffix = Path(model).suffix.lower()
    for info in RUNTIMES.values():
        if suffix in info.suffixes:
            return info
    known = ", ".join(s for r in RUNTIMES.values() for s in r.suffixes)
    raise ConfigError(f"{model}: unknown model format {suffix or '(no suffix)'!r}; known: {known} or {', '.join(WEIGHT_NAMES)}")


def load_runner(model: str, options: LoadOptions, runtime: str | None = None) -> Runner:
    """Load ``model`` in its runtime (or the one named) with ``options``."""
    if runtime is not None and runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; known: {', '.join(RUNTIMES)}")
    info = RUNTIMES[runtime] if runtime else runtime_for(model)
    if model not in WEIGHT_NAMES and not Path(model).is_file():
        raise InputFileError(f"{model}: model file not found")
    return _import(info, info.entry)(model, options)


def inspect_model(model: str, options: LoadOptions) -> dict[str, Any]:
    """Describe ``model`` with its runtime's inspector (``edgedeploy inspect``)."""
    info = runtime_for(model)
    if model not in WEIGHT_NAMES and not Path(model).is_file():
        raise InputFileError(f"{model}: model file not found")
    return _import(info, info.inspector)(model, options)


def open_layer_taps(model: str) -> Any:
    """``model`` opened to read every layer's output (a ``layers.LayerTaps``)."""
    info = runtime_for(model)
    if info.layer_taps is None:
        raise ConfigError(f"{model}: per-layer outputs are not offered for {info.name} models")
    if not Path(model).is_file():
        raise InputFileError(f"{model}: model file not found")
    return _import(info, info.layer_taps)(Path(model))


def _import(info: RuntimeInfo, entry: str) -> Any:
    module_name, attr = entry.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"pip install 'edgedeploy[{info.extra}]'" if info.extra else f"pip install {info.requires}"
        raise DependencyError(f"runtime {info.name} needs {info.requires} ({exc.name} missing): {hint}") from None
    return getattr(module, attr)
