"""``edgedeploy inspect`` for PyTorch weights: architecture, parameters, MACs, preprocessing."""

from __future__ import annotations

from typing import Any

from edgedeploy.backends.base import LoadOptions
from edgedeploy.backends.torch.runner import TorchRunner
from edgedeploy.models import config_options
from edgedeploy.models.profile import profile_model

__all__ = ["inspect"]


def inspect(model: str, options: LoadOptions) -> dict[str, Any]:
    runner = TorchRunner(model, options)
    config = runner.model.config
    complexity = profile_model(runner.model, config.resolution)
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
