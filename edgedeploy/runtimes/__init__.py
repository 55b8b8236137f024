"""The runtime registry: one row per runtime; the model file's suffix picks the row.

A runtime is a folder ``runtimes/<name>/`` with what it knows about its own model files:
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

from edgedeploy.core.errors import ConfigError, DependencyError, InputFileError
from edgedeploy.core.integrity import Verification, check_integrity
from edgedeploy.core.tf_checkpoint import TF_CHECKPOINT_SUFFIXES, tf_checkpoint_files
from edgedeploy.core.vulkan import VulkanReport, vulkan_adapters
from edgedeploy.models import WEIGHT_NAMES
from edgedeploy.runtimes.base import LoadOptions, Runner
from edgedeploy.runtimes.gpu import AcceleratorStatus
from edgedeploy.runtimes.precision import PrecisionVerdict
from edgedeploy.runtimes.taps import LayerTaps

__all__ = [
    "Runtime", "RUNTIMES", "register_runtime", "runtime_names", "get_runtime", "runtime_for", "load_runner",
    "inspect_model", "open_layer_taps", "prove_precision", "gpu_accelerators", "AcceleratorStatus", "check_model_files",
    "LoadOptions", "Runner", "Inspector", "PrecisionProver", "AcceleratorLister",
]


class Inspector(Protocol):
    def __call__(self, model: str, options: LoadOptions) -> dict[str, Any]: ...


class AcceleratorLister(Protocol):
    def __call__(self, report: VulkanReport) -> list[AcceleratorStatus]: ...


class PrecisionProver(Protocol):
    def __call__(self, path: Path, requested: str, keep_float: Collection[str]) -> PrecisionVerdict: ...


@dataclass(frozen=True)
class Runtime:
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
    # "module:function" (a PrecisionProver): proves an export's precision; None: exports to it are not offered.
    precision: str | None = None
    # "module:Class" (a LayerTaps) that reads every layer's output (edgedeploy diagnose); None: not offered.
    layer_taps: str | None = None
    # "module:function" (an AcceleratorLister): the runtime's GPU accelerators here (`edgedeploy devices`); None:
    # the runtime has none.
    gpu: str | None = None

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


RUNTIMES: dict[str, Runtime] = {}


def register_runtime(row: Runtime) -> Runtime:
    """Add a runtime row (a plugin's one call); names and suffixes must be new."""
    if row.name in RUNTIMES:
        raise ConfigError(f"runtime {row.name!r} is already registered")
    taken = {s for b in RUNTIMES.values() for s in b.suffixes} & set(row.suffixes)
    if taken:
        raise ConfigError(f"runtime {row.name}: suffix {', '.join(sorted(taken))} belongs to another runtime")
    RUNTIMES[row.name] = row
    return row


for _runtime in (
    Runtime("torch", (".pth", ".pt", *TF_CHECKPOINT_SUFFIXES), "edgedeploy.runtimes.torch.runner:TorchRunner",
            "edgedeploy.runtimes.torch.inspector:inspect", "torch",
            description="PyTorch eager (weights file, a TF checkpoint the family reads, or a name: sample, imagenet, "
                        "random)"),
    Runtime("onnxruntime", (".onnx",), "edgedeploy.runtimes.onnxruntime.runner:OnnxRuntimeRunner",
            "edgedeploy.runtimes.onnxruntime.inspector:inspect", "onnxruntime",
            description="ONNX Runtime, CPU execution provider (gpu: CUDA/TensorRT, or the WebGPU plugin provider)",
            precision="edgedeploy.runtimes.onnxruntime.precision:prove_precision",
            layer_taps="edgedeploy.runtimes.onnxruntime.taps:OnnxRuntimeLayerTaps",
            gpu="edgedeploy.runtimes.onnxruntime.gpu:accelerator_status"),
    Runtime("litert", (".tflite",), "edgedeploy.runtimes.litert.runner:LiteRTRunner",
            "edgedeploy.runtimes.litert.inspector:inspect", "ai-edge-litert", extra="tflite",
            description="LiteRT (TFLite) interpreter, XNNPACK delegate unless --no-xnnpack (gpu: LiteRT's GPU "
                        "accelerator, WebGPU)",
            precision="edgedeploy.runtimes.litert.precision:prove_precision",
            layer_taps="edgedeploy.runtimes.litert.taps:LiteRTLayerTaps",
            gpu="edgedeploy.runtimes.litert.gpu:accelerator_status"),
    Runtime("openvino", (".xml",), "edgedeploy.runtimes.openvino.runner:OpenVINORunner",
            "edgedeploy.runtimes.openvino.inspector:inspect", "openvino", extra="openvino",
            description="OpenVINO CPU plugin, latency hint, explicit inference precision (gpu: the GPU plugin)",
            precision="edgedeploy.runtimes.openvino.precision:prove_precision",
            layer_taps="edgedeploy.runtimes.openvino.taps:OpenVINOLayerTaps",
            gpu="edgedeploy.runtimes.openvino.runner:accelerator_status"),
    # No layer taps: with XNNPACK the graph runs as a few delegate calls, and ExecuTorch's debug
    # outputs (ETDump) stop at delegate boundaries, so there are no per-layer outputs to read.
    Runtime("executorch", (".pte",), "edgedeploy.runtimes.executorch.runner:ExecuTorchRunner",
            "edgedeploy.runtimes.executorch.inspector:inspect", "executorch", extra="executorch",
            description="ExecuTorch Python runtime, XNNPACK delegate",
            precision="edgedeploy.runtimes.executorch.precision:prove_precision"),
):
    register_runtime(_runtime)


def runtime_names() -> list[str]:
    return list(RUNTIMES)


def get_runtime(name: str) -> Runtime:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise ConfigError(f"unknown runtime {name!r}; known: {', '.join(RUNTIMES)}") from None


def runtime_for(model: str) -> Runtime:
    if model in WEIGHT_NAMES:
        return RUNTIMES["torch"]
    suffix = Path(model).suffix.lower()
    for row in RUNTIMES.values():
        if suffix in row.suffixes:
            return row
    known = ", ".join(s for r in RUNTIMES.values() for s in r.suffixes)
    raise ConfigError(f"{model}: unknown model format {suffix or '(no suffix)'!r}; known: {known} or {', '.join(WEIGHT_NAMES)}")


def _existing(model: str) -> None:
    if model not in WEIGHT_NAMES and not Path(model).is_file() and not tf_checkpoint_files(model):
        raise InputFileError(f"{model}: is a directory" if Path(model).is_dir() else f"{model}: model file not found")


def check_model_files(model: str, verify: bool = True) -> Verification:
    """``model``'s files against its manifest (ArtifactMismatchError, exit 3, on a difference);
    ``verify=False`` (--no-verify) skips the check and says so. Weights names have no manifest."""
    _existing(model)
    if not verify:
        return Verification(False)
    if model in WEIGHT_NAMES or tf_checkpoint_files(model):
        return Verification(None)
    return check_integrity(model)


def load_runner(model: str, options: LoadOptions, runtime: str | None = None) -> Runner:
    """Load ``model`` in its runtime (or the one named) with ``options``."""
    row = get_runtime(runtime) if runtime else runtime_for(model)
    verification = check_model_files(model, options.verify)
    runner: Runner = row.load(row.runner)(model, options)
    runner.verification = verification
    return runner


def inspect_model(model: str, options: LoadOptions) -> dict[str, Any]:
    """Describe ``model`` with its runtime's inspector (``edgedeploy inspect``)."""
    row = runtime_for(model)
    verification = check_model_files(model, options.verify)
    inspector: Inspector = row.load(row.inspector)
    return {**inspector(model, options), "verified": verification.verified}


def open_layer_taps(model: str, verify: bool = True) -> LayerTaps:
    """``model`` opened to read every layer's output."""
    row = runtime_for(model)
    if row.layer_taps is None:
        raise ConfigError(f"{model}: per-layer outputs are not offered for {row.name} models")
    check_model_files(model, verify)
    taps: LayerTaps = row.load(row.layer_taps)(Path(model))
    return taps


def gpu_accelerators() -> list[AcceleratorStatus]:
    """Every registered runtime's GPU accelerators, usable now or why not (one Vulkan probe for all)."""
    report = vulkan_adapters()
    rows: list[AcceleratorStatus] = []
    for row in RUNTIMES.values():
        if row.gpu is None:
            continue
        try:
            lister: AcceleratorLister = row.load(row.gpu)
            rows += lister(report)
        except DependencyError as exc:  # the runtime itself is not installed
            rows.append(AcceleratorStatus(row.name, row.name, False, str(exc)))
    return rows


def prove_precision(runtime: str, path: Path, requested: str, keep_float: Collection[str] = ()) -> PrecisionVerdict:
    """Check the artifact at ``path`` (a ``runtime`` model) against the ``requested`` precision."""
    row = get_runtime(runtime)
    if row.precision is None:
        raise ConfigError(f"runtime {runtime} has no precision proof: it cannot be an export target's runtime")
    prove: PrecisionProver = row.load(row.precision)
    return prove(path, requested, keep_float)
