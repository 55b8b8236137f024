"""Mobile DeepLabv3 (Sandler et al. 2018, section 6.3; Chen et al. 2017): a dilated MobileNetV2 and the
head Google's published model has (image pooling + 1x1 branch, concatenated, projected, classified,
upsampled bilinearly with ``align_corners``).

The backbone's blocks are MobileNetV2's own (``edgedeploy.models.mobilenet_v2``); DeepLab only
changes where they downsample: once the features reach ``output_stride``, a block that would have
stride 2 keeps stride 1 and every later 3x3 depthwise convolution dilates instead (TF's rule: the
block that drops the stride still runs at the old rate, the rate doubles after it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgedeploy.models.deeplabv3_mobilenet_v2.config import DeepLabV3MobileNetV2Config
from edgedeploy.models.mobilenet_v2.network import (
    INVERTED_RESIDUAL_SETTINGS,
    ConvBNReLU6,
    InvertedResidual,
    MobileNetV2,
    make_divisible,
)

__all__ = ["DeepLabV3MobileNetV2", "ASPP_CHANNELS", "backbone_channels"]

# DeepLab's ASPP depth.
ASPP_CHANNELS = 256
# slim's min_depth: no layer narrower than this.
MIN_DEPTH = 8


def backbone_channels(width: float) -> int:
    """The divisor channel counts are rounded to: DeepLab's MobileNetV2 uses 8 at width 1.0 and none
    (1) otherwise, so width 0.5 has 12 and 48 channels where torchvision's classifier has 16 and 48."""
    return 8 if width == 1.0 else 1


def _dilate(block: InvertedResidual, dilation: int) -> None:
    """Dilate ``block``'s 3x3 depthwise convolution ("SAME" padding = the dilation)."""
    depthwise = next(m for m in block.conv.modules() if isinstance(m, nn.Conv2d) and m.groups > 1)
    depthwise.dilation = (dilation, dilation)
    depthwise.padding = (dilation, dilation)


class ConvBNReLU(nn.Sequential):
    """1x1 conv -> BatchNorm -> ReLU: DeepLab's head layers (ReLU, not ReLU6)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True))


class DeepLabV3MobileNetV2(nn.Module):
    def __init__(self, config: DeepLabV3MobileNetV2Config = DeepLabV3MobileNetV2Config()):
        super().__init__()
        self.config = config
        divisor = backbone_channels(config.width)

        def channels(c: int) -> int:
            return make_divisible(c * config.width, divisor, MIN_DEPTH)

        in_ch = channels(32)
        blocks: list[nn.Module] = [ConvBNReLU6(3, in_ch, stride=2)]
        stride, dilation = 2, 1
        for t, c, n, s in INVERTED_RESIDUAL_SETTINGS:
            out_ch = channels(c)
            for i in range(n):
                block_stride, block_dilation = (s if i == 0 else 1), dilation
                if block_stride > 1 and stride >= config.output_stride:
                    dilation *= block_stride
                    block_stride = 1
                stride *= block_stride
                block = InvertedResidual(in_ch, out_ch, block_stride, t)
                if block_dilation > 1:
                    _dilate(block, block_dilation)
                blocks.append(block)
                in_ch = out_ch
        self.backbone = nn.Sequential(*blocks)
        self.image_pooling = ConvBNReLU(in_ch, ASPP_CHANNELS)
        self.aspp0 = ConvBNReLU(in_ch, ASPP_CHANNELS)
        self.concat_projection = ConvBNReLU(2 * ASPP_CHANNELS, ASPP_CHANNELS)
        self.logits = nn.Conv2d(ASPP_CHANNELS, config.num_classes, 1)
        self._init_weights()

    # torchvision's initialisation, as the classifier's (`random` weights behave like an untrained model).
    _init_weights = MobileNetV2._init_weights

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        features = self.backbone(x)
        # Image pooling: the global average broadcast back over the feature map (a resize from 1x1).
        pooled = self.image_pooling(features.mean((2, 3), keepdim=True))
        pooled = F.interpolate(pooled, size=features.shape[-2:], mode="bilinear", align_corners=True)
        x = self.concat_projection(torch.cat([pooled, self.aspp0(features)], 1))
        return F.interpolate(self.logits(x), size=size, mode="bilinear", align_corners=True)
