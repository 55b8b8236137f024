"""Mobile DeepLabv3's hyper-parameters, without torch (validated by the CLI, recipes and manifests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.limits import MAX_WIDTH, MIN_WIDTH, check_width

__all__ = ["DeepLabV3MobileNetV2Config", "MIN_WIDTH", "MAX_WIDTH", "OUTPUT_STRIDES", "MIN_RESOLUTION", "MAX_RESOLUTION"]

# The smallest input whose 1/8 feature map still has a centre pixel; the largest DeepLab evaluates at (1025).
MIN_RESOLUTION, MAX_RESOLUTION = 65, 1025
# Where the backbone stops downsampling and dilates instead (DeepLabv3, section 3.1).
OUTPUT_STRIDES = (8, 16)


@dataclass(frozen=True)
class DeepLabV3MobileNetV2Config:
    """Defaults are Google's published Mobile DeepLabv3 (width 0.5, 257 px, PASCAL VOC's 21 classes, stride 8).

    Sizes of the form 8k + 1 (257, 321, 513) keep every stride-2 "SAME" convolution symmetric and the
    ``align_corners`` resizes on whole pixels: the convention DeepLab was trained and exported with.
    """

    arch: ClassVar[str] = "deeplabv3_mobilenet_v2"
    width: float = 0.5
    resolution: int = 257
    num_classes: int = 21
    output_stride: int = 8

    def __post_init__(self) -> None:
        check_width(self.width)
        if not MIN_RESOLUTION <= self.resolution <= MAX_RESOLUTION:
            raise ConfigError(f"input resolution {self.resolution} is outside [{MIN_RESOLUTION}, {MAX_RESOLUTION}] "
                              "(DeepLab's sizes are 8k + 1: 257, 321, 513)")
        if self.output_stride not in OUTPUT_STRIDES:
            raise ConfigError(f"output stride {self.output_stride} is not one of {', '.join(map(str, OUTPUT_STRIDES))}")
        if self.num_classes < 1:
            raise ConfigError(f"class count must be positive, got {self.num_classes}")

    @property
    def name(self) -> str:
        return f"deeplabv3_mobilenet_v2_{self.width}_{self.resolution}_os{self.output_stride}"
