"""``edgedeploy inspect`` for PyTorch weights: architecture, parameters, MACs, preprocessing."""

from __future__ import annotations

from typing import Any

from edgedeploy.models import config_options
from edgedeploy.models.complexity import measure_complexity
from edgedeploy.runtimes.base import LoadOptions
from edgedeploy.runtimes.torch.runner import TorchRunner

__all__ = ["inspect"]


def inspect(model: str, options: LoadOptions) -> dict[str, Any]:
    runner = TorchRunner(model, options)
    config = runner.model.config
    complexity = measure_complexity(runner.model, config.resolution)
    return {
        "model": model,
        "runtime": "torch",
        "arch": config.arch,
        "width": config.width,
        "resolution": config.resolution,
        "num_classes": config.num_classes,
        **config_options(config),
        "task": runner.io.task,
        "params": complexity.params,
        "macs": complexity.macs,
        "weights_sha256": runner.weights.sha256 if runner.weights else None,
        "preprocessing": runner.io.preprocessing.to_dict(),
    }
