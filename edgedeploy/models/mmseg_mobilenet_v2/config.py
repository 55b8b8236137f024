"""The M-V2-D8 families' hyper-parameters, without torch (validated by the CLI, recipes and manifests).

mmsegmentation's ``configs/mobilenet_v2`` put four decode heads on one backbone: ``MobileNetV2(widen_factor=1.,
strides=(1, 2, 2, 1, 1, 1, 1), dilations=(1, 1, 1, 2, 2, 4, 4), out_indices=(1, 2, 4, 6))``, output stride 8, the
heads' 512 channels and their ResNet configs' other settings; trained on Cityscapes (19 classes, 512x1024 crops)
and ADE20K (150 classes, 512x512).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.limits import MAX_WIDTH, MIN_WIDTH, check_width

__all__ = ["MMSegMobileNetV2Config", "FCNConfig", "PSPNetConfig", "DeepLabV3Config", "DeepLabV3PlusConfig",
           "HEADS", "MIN_WIDTH", "MAX_WIDTH", "MIN_RESOLUTION", "MAX_RESOLUTION", "BACKBONE_STRIDES",
           "BACKBONE_DILATIONS", "HEAD_CHANNELS", "PSP_BINS", "ASPP_DILATIONS", "IGNORE_INDEX"]

# The input's smallest side that leaves the stride-8 map 8 pixels (PSPNet's 6 bins and the 3x3 convs need a few);
# the largest, twice Cityscapes' full 1024x2048 frame's short side.
MIN_RESOLUTION, MAX_RESOLUTION = 64, 2048
# The backbone's seven stages (mmseg's layer1-7): the first block's stride, every block's dilation.
BACKBONE_STRIDES = (1, 2, 2, 1, 1, 1, 1)
BACKBONE_DILATIONS = (1, 1, 1, 2, 2, 4, 4)
# The heads' width (decode_head.channels in every M-V2-D8 config), PSPNet's bins, the ASPP rates.
HEAD_CHANNELS = 512
PSP_BINS = (1, 2, 3, 6)
ASPP_DILATIONS = (1, 12, 24, 36)
# DeepLabV3+'s low-level features: layer2 (stride 4) projected to 48 channels.
C1_CHANNELS = 48
# The label mmseg ignores in masks (Cityscapes' and ADE20K's converted masks use it for void).
IGNORE_INDEX = 255
# Registry name -> mmseg head class.
HEADS = {"fcn_mobilenet_v2": "FCNHead", "pspnet_mobilenet_v2": "PSPHead", "deeplabv3_aspp_mobilenet_v2": "ASPPHead",
         "deeplabv3plus_mobilenet_v2": "DepthwiseSeparableASPPHead"}


@dataclass(frozen=True)
class MMSegMobileNetV2Config:
    """Defaults are mmseg's Cityscapes models (width 1.0, 19 classes) at 512 px (a square input: the 512x512
    ADE20K crop; Cityscapes' models were trained on 512x1024 crops and run at any size)."""

    arch: ClassVar[str] = ""
    width: float = 1.0
    resolution: int = 512
    num_classes: int = 19

    def __post_init__(self) -> None:
        check_width(self.width)
        if not MIN_RESOLUTION <= self.resolution <= MAX_RESOLUTION:
            raise ConfigError(f"input resolution {self.resolution} is outside [{MIN_RESOLUTION}, {MAX_RESOLUTION}] "
                              "(mmseg's M-V2-D8 crops are 512x512 and 512x1024)")
        if self.num_classes < 1:
            raise ConfigError(f"class count must be positive, got {self.num_classes}")

    @property
    def head(self) -> str:
        return HEADS[self.arch]

    @property
    def name(self) -> str:
        return f"{self.arch}_{self.width}_{self.resolution}"


@dataclass(frozen=True)
class FCNConfig(MMSegMobileNetV2Config):
    arch: ClassVar[str] = "fcn_mobilenet_v2"


@dataclass(frozen=True)
class PSPNetConfig(MMSegMobileNetV2Config):
    arch: ClassVar[str] = "pspnet_mobilenet_v2"


@dataclass(frozen=True)
class DeepLabV3Config(MMSegMobileNetV2Config):
    arch: ClassVar[str] = "deeplabv3_aspp_mobilenet_v2"


@dataclass(frozen=True)
class DeepLabV3PlusConfig(MMSegMobileNetV2Config):
    arch: ClassVar[str] = "deeplabv3plus_mobilenet_v2"
