"""The model registry: one row per model family, so adding a family touches one place.

A row names the family's torch-free config class (validated by the CLI, recipes and
manifests without importing torch) and its network class (imported only to build it).
Query it like timm: ``list_models("mobilenet*")``, ``get_model("mobilenet_v2")``.
"""

from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass
from typing import Any, Protocol

from edgedeploy.core.errors import ConfigError

__all__ = ["ModelConfig", "ModelFamily", "MODELS", "WEIGHT_NAMES", "DEFAULT_MODEL", "list_models", "get_model", "register_model"]

# Names that --weights accepts besides a file path; eval/bench treat them as PyTorch models.
WEIGHT_NAMES = ("sample", "imagenet", "random")
DEFAULT_MODEL = "mobilenet_v2"


class ModelConfig(Protocol):
    """What the pipeline, runners and manifests read of any family's config."""

    arch: str
    width: float
    resolution: int
    num_classes: int

    @property
    def name(self) -> str:
        """The artifact stem, e.g. mobilenet_v2_1.0_224."""


@dataclass(frozen=True)
class ModelFamily:
    name: str
    description: str
    # "module:Class" of the config dataclass (width, resolution, num_classes; torch-free).
    config: str
    # "module:Class" of the torch.nn.Module, built from a config.
    network: str

    def make_config(self, **values: Any) -> ModelConfig:
        config: ModelConfig = _load(self.config)(**values)
        return config

    def build(self, config: Any) -> Any:
        return _load(self.network)(config)


def _load(entry: str) -> Any:
    module, attr = entry.split(":")
    return getattr(importlib.import_module(module), attr)


MODELS: dict[str, ModelFamily] = {
    m.name: m
    for m in (
        ModelFamily(
            name="mobilenet_v2",
            description="MobileNetV2 (Sandler et al., 2018), torchvision-compatible keys, width 0.35-1.4",
            config="edgedeploy.models.mobilenet_v2.config:MobileNetV2Config",
            network="edgedeploy.models.mobilenet_v2.network:MobileNetV2",
        ),
    )
}


def register_model(family: ModelFamily) -> ModelFamily:
    """Add a family to the registry (a plugin's one call); the name must be new."""
    if family.name in MODELS:
        raise ConfigError(f"model {family.name!r} is already registered")
    MODELS[family.name] = family
    return family


def list_models(pattern: str = "*") -> list[str]:
    return [name for name in MODELS if fnmatch.fnmatch(name, pattern)]


def get_model(name: str) -> ModelFamily:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None
