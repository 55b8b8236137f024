"""The runtime registry: one row per backend; the model file's suffix picks the row.

A backend is a folder ``backends/<name>/`` with what it knows about its own model files:
``runner.py`` (a :class:`Runner`), ``inspector.py`` (``edgedeploy inspect``), and where the
runtime allows it ``precision.py`` (the precision proof of an export) and ``taps.py``
(every layer's output, for ``edgedeploy diagnose``). The row names them as
``module:attribute``; they are imported lazily, so a missing optional runtime only matters
when a model that needs it is loaded, and the error then names the extra to install.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edgedeploy.backends.base import LoadOptions, Runner
from edgedeploy.backends.precision import PrecisionVerdict
from edgedeploy.backends.taps import LayerTaps
from edgedeploy.core.errors import ConfigError, DependencyError, InputFileError
from edgedeploy.core.integrity import Verification, verify_artifact
from edgedeploy.models import WEIGHT_NAMES

__all__ = [
    "Backend", "RUNTIMES", "register_runtime", "runtime_names", "get_runtime", "runtime_for", "load_runner",
    "inspect_model", "open_layer_taps", "verify_precision", "verify_model", "LoadOptions", "Runner", "Inspector",
    "PrecisionVerifier",
]


class Inspector(Protocol):
    def __call__(self, model: str, options: LoadOptions) -> dict[str, Any]: ...


class PrecisionVerifier(Protocol):
    def __call__(self, path: Path, requested: str, keep_float: Collection[str]) -> PrecisionVerdict: ...


@dataclass(frozen=True)
class Backend:
    name: str
    suffixes: tuple[str, ...]
    # "module:Class" of the Runner, imported on first use.
    runner: str
    # "module:function" (an Inspector) that describes a model file (edgedeploy inspect).
    inspector: str
    # The package whose absence the error names, and the edgedeploy extra that installs it.
    requires: str
    extra: str | None = None
    description: str = ""
    # "module:function" (a PrecisionVerifier): proves an export's precision; None: exports to it are not offered.
    precision: str | None = None
    # "module:Class" (a LayerTaps) that reads every layer's output (edgedeploy diagnose); None: not offered.
    layer_taps: str | None = None

    def load(self, entry: str) -> Any:
        module_name, attr = entry.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            if exc.name and exc.name.startswith("edgedeploy"):
                raise  # our own bug, not a missing package
            hint = f"pip install 'edgedeploy[{self.extra}]'" if self.extra else f"pip install {self.requires}"
            raise DependencyError(f"runtime {self.name} needs {self.requires} ({exc.name} missing): {hint}") from None
        return getattr(module, attr)


RUNTIMES: dict[str, Backend] = {}


def register_runtime(backend: Backend) -> Backend:
    """Add a backend row (a plugin's one call); names and suffixes must be new."""
    if backend.name in RUNTIMES:
        raise ConfigError(f"runtime {backend.name!r} is already registered")
    taken = {s for b in RUNTIMES.values() for s in b.suffixes} & set(backend.suffixes)
    if taken:
        raise ConfigError(f"runtime {backend.name}: suffix {', '.join(sorted(taken))} belongs to another runtime")
    RUNTIMES[backend.name] = backend
    return backend


for _backend in (
    Backend("torch", (".pth", ".pt"), "edgedeploy.backends.torch.runner:TorchRunner",
            "edgedeploy.backends.torch.inspector:inspect", "torch",
            description="PyTorch eager (weights file or name: sample, imagenet, random)"),
    Backend("onnxruntime", (".onnx",), "edgedeploy.backends.onnxruntime.runner:OnnxRuntimeRunner",
            "edgedeploy.backends.onnxruntime.inspector:inspect", "onnxruntime",
            description="ONNX Runtime, CPU execution provider",
            precision="edgedeploy.backends.onnxruntime.precision:verify_precision",
            layer_taps="edgedeploy.backends.onnxruntime.taps:OnnxRuntimeLayerTaps"),
    Backend("litert", (".tflite",), "edgedeploy.backends.litert.runner:LiteRTRunner",
            "edgedeploy.backends.litert.inspector:inspect", "ai-edge-litert", extra="tflite",
            description="LiteRT (TFLite) interpreter, XNNPACK delegate unless --no-xnnpack",
            precision="edgedeploy.backends.litert.precision:verify_precision",
            layer_taps="edgedeploy.backends.litert.taps:LiteRTLayerTaps"),
    Backend("openvino", (".xml",), "edgedeploy.backends.openvino.runner:OpenVINORunner",
            "edgedeploy.backends.openvino.inspector:inspect", "openvino", extra="openvino",
            description="OpenVINO CPU plugin, latency hint, explicit inference precision",
            precision="edgedeploy.backends.openvino.precision:verify_precision",
            layer_taps="edgedeploy.backends.openvino.taps:OpenVINOLayerTaps"),
    # No layer taps: with XNNPACK the graph runs as a few delegate calls, and ExecuTorch's debug
    # outputs (ETDump) stop at delegate boundaries, so there are no per-layer outputs to read.
    Backend("executorch", (".pte",), "edgedeploy.backends.executorch.runner:ExecuTorchRunner",
            "edgedeploy.backends.executorch.inspector:inspect", "executorch", extra="executorch",
            description="ExecuTorch Python runtime, XNNPACK delegate",
            precision="edgedeploy.backends.executorch.precision:verify_precision"),
):
    register_runtime(_backend)


def runtime_names() -> list[str]:
    return list(RUNTIMES)


def get_runtime(name: str) -> Backend:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise ConfigError(f"unknown runtime {name!r}; known: {', '.join(RUNTIMES)}") from None


def runtime_for(model: str) -> Backend:
    if model in WEIGHT_NAMES:
        return RUNTIMES["torch"]
    suffix = Path(model).suffix.lower()
    for backend in RUNTIMES.values():
        if suffix in backend.suffixes:
            return backend
    known = ", ".join(s for r in RUNTIMES.values() for s in r.suffixes)
    raise ConfigError(f"{model}: unknown model format {suffix or '(no suffix)'!r}; known: {known} or {', '.join(WEIGHT_NAMES)}")


def _existing(model: str) -> None:
    if model not in WEIGHT_NAMES and not Path(model).is_file():
        raise InputFileError(f"{model}: is a directory" if Path(model).is_dir() else f"{model}: model file not found")


def verify_model(model: str, verify: bool = True) -> Verification:
    """``model``'s files against its manifest (ArtifactMismatchError, exit 3, on a difference);
    ``verify=False`` (--no-verify) skips the check and says so. Weights names have no manifest."""
    _existing(model)
    if not verify:
        return Verification(False)
    if model in WEIGHT_NAMES:
        return Verification(None)
    return verify_artifact(model)


def load_runner(model: str, options: LoadOptions, runtime: str | None = None) -> Runner:
    """Load ``model`` in its runtime (or the one named) with ``options``."""
    backend = get_runtime(runtime) if runtime else runtime_for(model)
    verification = verify_model(model, options.verify)
    runner: Runner = backend.load(backend.runner)(model, options)
    runner.verification = verification
    return runner


def inspect_model(model: str, options: LoadOptions) -> dict[str, Any]:
    """Describe ``model`` with its runtime's inspector (``edgedeploy inspect``)."""
    backend = runtime_for(model)
    verification = verify_model(model, options.verify)
    inspector: Inspector = backend.load(backend.inspector)
    return {**inspector(model, options), "verified": verification.verified}


def open_layer_taps(model: str, verify: bool = True) -> LayerTaps:
    """``model`` opened to read every layer's output."""
    backend = runtime_for(model)
    if backend.layer_taps is None:
        raise ConfigError(f"{model}: per-layer outputs are not offered for {backend.name} models")
    verify_model(model, verify)
    taps: LayerTaps = backend.load(backend.layer_taps)(Path(model))
    return taps


def verify_precision(runtime: str, path: Path, requested: str, keep_float: Collection[str] = ()) -> PrecisionVerdict:
    """Check the artifact at ``path`` (a ``runtime`` model) against the ``requested`` precision."""
    backend = get_runtime(runtime)
    if backend.precision is None:
        raise ConfigError(f"runtime {runtime} has no precision proof: it cannot be an export target's runtime")
    verifier: PrecisionVerifier = backend.load(backend.precision)
    return verifier(path, requested, keep_float)
