"""What an export starts from: the PyTorch model (a registered family or a user module) or an ONNX file, with
the reference runner parity compares against and the manifest's model and weights records."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.hashing import sha256_file
from edgedeploy.exporter.choices import IoDtype
from edgedeploy.exporter.options import ExportOptions
from edgedeploy.exporter.request import ExportRequest
from edgedeploy.exporter.target import Target
from edgedeploy.exporter.targets import TARGETS
from edgedeploy.models import ModelConfig, config_options
from edgedeploy.models.architecture import Architecture
from edgedeploy.models.complexity import Complexity, measure_complexity
from edgedeploy.models.modules import ModuleConfig
from edgedeploy.runtimes import LoadOptions, Runner, load_runner
from edgedeploy.runtimes.torch.runner import TorchRunner

__all__ = ["ExportSource", "torch_source", "onnx_source"]


@dataclass
class ExportSource:
    """What the artifact is exported from: the PyTorch model (a registered family or a user module) or an ONNX
    file; parity compares the artifact with ``reference``."""

    config: ModelConfig
    reference: Runner
    # The PyTorch module (None for ONNX in) and, for ONNX in, the normalized graph to simplify.
    model: Any
    onnx_path: Path | None
    complexity: Complexity
    # The manifest's "model" and "weights" sections.
    model_record: dict[str, Any]
    weights_record: dict[str, Any]


def torch_source(request: ExportRequest) -> ExportSource:
    config = request.config
    assert config is not None
    options = LoadOptions(threads=request.threads, mean=request.mean, std=request.std,
                          architecture=Architecture.of(config))
    reference = TorchRunner(request.weights, options)
    complexity = measure_complexity(reference.model, config.resolution)
    weights = reference.weights
    return ExportSource(config, reference, reference.model, None, complexity, {
        "arch": config.arch, "width": config.width, "resolution": config.resolution,
        "num_classes": config.num_classes, **config_options(config), "params": complexity.params,
        "macs": complexity.macs,
    }, {
        "source": weights.source if weights else "random",
        "sha256": weights.sha256 if weights else None,
        **({"key_mapping": weights.key_mapping} if weights and weights.key_mapping else {}),
    })


def onnx_source(request: ExportRequest, target: Target, options: ExportOptions, stage: Path) -> ExportSource:
    from edgedeploy.exporter.onnx_source import read_onnx_input

    assert request.onnx is not None
    if target.source != "onnx":
        onnx_targets = ", ".join(t.name for t in TARGETS.values() if t.source == "onnx")
        raise ConfigError(f"{target.name} converts from PyTorch, not ONNX; ONNX in takes: {onnx_targets}")
    if options.ptq:
        raise ConfigError("--ptq works on a PyTorch model; ONNX in cannot take it")
    if request.mean is None or request.std is None:
        raise ConfigError(f"{request.onnx}: an ONNX file records no normalization: pass --mean and --std (e.g. "
                          "--mean 0.485 0.456 0.406 --std 0.229 0.224 0.225)")
    if options.io_dtype is IoDtype.UINT8:
        raise ConfigError("--io-dtype uint8 folds normalization into a PyTorch graph; ONNX in cannot take it")
    source = read_onnx_input(request.onnx, stage / "normalized.onnx", request.input_size, request.dynamic_batch)
    config = ModuleConfig(f"onnx:{request.onnx.stem}", source.resolution, source.num_classes)
    reference = load_runner(str(source.path), LoadOptions(threads=request.threads, mean=request.mean,
                                                         std=request.std, verify=False), runtime="onnxruntime")
    reference.io = replace(reference.io, task=config.task)
    return ExportSource(config, reference, None, source.path, Complexity(source.params, 0), {
        "arch": "onnx", "file": request.onnx.name, "resolution": source.resolution,
        "num_classes": source.num_classes, "params": source.params, "macs": None,
    }, {"source": str(request.onnx), "sha256": sha256_file(request.onnx)})
