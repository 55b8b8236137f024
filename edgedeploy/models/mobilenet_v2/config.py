"""MobileNetV2's architecture hyper-parameters, without torch: recipes, manifests and the CLI
validate them without importing a deep-learning framework."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgedeploy.core.errors import ConfigError

__all__ = ["MobileNetV2Config", "MIN_WIDTH", "MAX_WIDTH", "MIN_RESOLUTION", "MAX_RESOLUTION"]

MIN_WIDTH, MAX_WIDTH = 0.35, 1.4
MIN_RESOLUTION, MAX_RESOLUTION = 96, 512
# The network downsamples by 32; other sizes would leave ragged feature maps.
RESOLUTION_STEP = 32


@dataclass(frozen=True)
class MobileNetV2Config:
    """Architecture hyper-parameters; validated on construction."""

    # The model registry's name for this family (edgedeploy.models.MODELS).
    arch: ClassVar[str] = "mobilenet_v2"
    width: float = 1.0
    resolution: int = 224
    num_classes: int = 1000
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if not MIN_WIDTH <= self.width <= MAX_WIDTH:
            raise ConfigError(
                f"width multiplier {self.width} is outside [{MIN_WIDTH}, {MAX_WIDTH}]"
            )
        if (
            not MIN_RESOLUTION <= self.resolution <= MAX_RESOLUTION
            or self.resolution % RESOLUTION_STEP
        ):
            raise ConfigError(
                f"input resolution {self.resolution} must be a multiple of "
                f"{RESOLUTION_STEP} between {MIN_RESOLUTION} and {MAX_RESOLUTION}"
            )
        if self.num_classes < 1:
            raise ConfigError(f"class count must be positive, got {self.num_classes}")

    @property
    def name(self) -> str:
        return f"mobilenet_v2_{self.width}_{self.resolution}"
