"""Which PyTorch architecture a weights file or name belongs to: a registered family (or a user module's factory)
and its size, as loading asks for it. The family fills in what is not given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgedeploy.models import DEFAULT_MODEL, ModelConfig, config_options, get_model

__all__ = ["Architecture"]


@dataclass(frozen=True)
class Architecture:
    # A model registry name, or a user module's factory package.module:callable.
    arch: str = DEFAULT_MODEL
    # None: the family's default.
    width: float | None = None
    resolution: int | None = None
    num_classes: int | None = None
    # The family's own options (``--model-option KEY=VALUE``, e.g. output_stride=16), as sorted pairs.
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, config: ModelConfig) -> Architecture:
        """The architecture a family config describes, every size given."""
        return cls(config.arch, config.width, config.resolution, config.num_classes,
                   tuple(sorted(config_options(config).items())))

    def config(self) -> ModelConfig:
        """The family's config of this size."""
        given = {"width": self.width, "resolution": self.resolution, "num_classes": self.num_classes}
        return get_model(self.arch).make_config(**{k: v for k, v in given.items() if v is not None},
                                                **dict(self.options))
