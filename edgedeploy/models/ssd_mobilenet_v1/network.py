"""SSD-MobileNetV1 (Liu et al. 2016; Howard et al. 2017) as the TF Object Detection API builds it: slim's
MobileNetV1 (conv0, then 13 depthwise-separable blocks), four extra 1x1 -> 3x3 stride-2 layers, and a 1x1
box-encoding and class predictor on six maps (Conv2d_11_pointwise, Conv2d_13_pointwise, the four extras).

Every convolution pads as TF's "SAME" does, which is asymmetric where a stride-2 layer meets an even size
(300 -> 150 pads nothing before and one row/column after): the pads are computed once, from the configured
resolution, so the graph has no shape arithmetic and exports with static shapes (a network is built for one
input size, as the anchors are). Every backbone and extra layer is conv -> BatchNorm -> ReLU6 (the quantized
.tflite keeps the ReLU6 in its [0, 6] output ranges, or fused into the extra layers' convolutions).

``forward`` returns (box encodings (N, A, 4) as (ty, tx, th, tw), class logits (N, A, num_classes + 1) before
the sigmoid, background first); anchors are laid out per map, row-major over (y, x), then the anchor index.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from edgedeploy.models.mobilenet_v2.network import MobileNetV2
from edgedeploy.models.ssd_heads import flatten_heads
from edgedeploy.models.ssd_mobilenet_v1.config import (
    ANCHORS_PER_LOCATION,
    BLOCKS,
    FEATURE_BLOCKS,
    SSDMobileNetV1Config,
)

__all__ = ["BN_EPS", "ConvBNReLU6", "SSDMobileNetV1", "same_padding"]

# The Object Detection API's SSD configs' batch norm epsilon (PyTorch's default is 1e-5).
BN_EPS = 1e-3


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME": (before, after) padding of one axis; the odd pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class ConvBNReLU6(nn.Module):
    """conv (no bias) -> BatchNorm -> ReLU6 on a ``size`` x ``size`` input, padded as TF's "SAME"."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, size: int, groups: int = 1):
        super().__init__()
        before, after = same_padding(size, kernel, stride)
        symmetric = before == after
        # Symmetric pads stay in the convolution; asymmetric ones are an explicit F.pad (left, right, top, bottom).
        self.pad = (0, 0, 0, 0) if symmetric else (before, after, before, after)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, before if symmetric else 0, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=BN_EPS)
        self.out_size = -(-size // stride)

    def forward(self, x: Tensor) -> Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad)
        return F.relu6(self.bn(self.conv(x)))


class BoxPredictor(nn.Module):
    """One map's 1x1 box-encoding and class convolutions (with bias, no activation)."""

    def __init__(self, in_ch: int, anchors: int, classes: int):
        super().__init__()
        self.box_encoding = nn.Conv2d(in_ch, anchors * 4, 1)
        self.class_prediction = nn.Conv2d(in_ch, anchors * classes, 1)


class SSDMobileNetV1(nn.Module):
    def __init__(self, config: SSDMobileNetV1Config | None = None):
        super().__init__()
        self.config = config = config or SSDMobileNetV1Config()
        channels = config.backbone_channels()
        size = config.resolution
        stem = ConvBNReLU6(3, channels[0], 3, 2, size)
        layers: list[ConvBNReLU6] = [stem]
        in_ch, size = channels[0], stem.out_size
        for (stride, _), out_ch in zip(BLOCKS, channels[1:]):
            depthwise = ConvBNReLU6(in_ch, in_ch, 3, stride, size, groups=in_ch)
            layers += [depthwise, ConvBNReLU6(in_ch, out_ch, 1, 1, depthwise.out_size)]
            in_ch, size = out_ch, depthwise.out_size
        # conv0 is layer 0, block b's depthwise 2b - 1 and pointwise 2b.
        self.taps = tuple(2 * block for block in FEATURE_BLOCKS)
        self.backbone = nn.Sequential(*layers)
        extras: list[nn.Sequential] = []
        for reduce_ch, out_ch in config.extra_channels():
            expand = ConvBNReLU6(in_ch, reduce_ch, 1, 1, size)
            down = ConvBNReLU6(reduce_ch, out_ch, 3, 2, size)
            extras.append(nn.Sequential(expand, down))
            in_ch, size = out_ch, down.out_size
        self.extras = nn.ModuleList(extras)
        feature_channels = [channels[b] for b in FEATURE_BLOCKS] + [out for _, out in config.extra_channels()]
        classes = config.num_classes + 1
        self.predictors = nn.ModuleList(BoxPredictor(ch, k, classes)
                                        for ch, k in zip(feature_channels, ANCHORS_PER_LOCATION))
        # (map size, anchors per cell) of each predictor: the reshapes' static sizes.
        self.grids = tuple(zip(config.feature_map_sizes(), ANCHORS_PER_LOCATION))
        self._init_weights()

    # torchvision's initialisation, as the classifier's (`random` weights behave like an untrained model).
    _init_weights = MobileNetV2._init_weights

    def features(self, x: Tensor) -> list[Tensor]:
        """The six maps the predictors read, finest first."""
        maps = []
        for index, layer in enumerate(self.backbone):
            x = layer(x)
            if index in self.taps:
                maps.append(x)
        for extra in self.extras:
            x = extra(x)
            maps.append(x)
        return maps

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        predictions = [(p.box_encoding(f), p.class_prediction(f)) for f, p in zip(self.features(x), self.predictors)]
        return flatten_heads(predictions, self.grids, self.config.num_classes + 1)
