"""SSDLite-MobileNetV2 (Sandler et al. 2018, section 6.2 and Table 6) as the TF Object Detection API builds it
(``ssd_mobilenet_v2`` feature extractor with ``use_depthwise``, convolutional box predictor with ``use_depthwise``):

- slim's MobileNetV2 up to Conv_1: Conv (3x3 s2), 17 expanded_conv blocks (1x1 expansion, 3x3 depthwise, linear
  1x1 projection, residual when the shapes allow), Conv_1 (1x1);
- six maps: expanded_conv_13's expansion output (the API's ``layer_15/expansion_output``, stride 16), Conv_1's
  output (stride 32), then four extra layers, each 1x1 -> 3x3 depthwise stride 2 -> 1x1 (SSDLite: separable
  where SSD has a full 3x3);
- on each map two predictors, each a 3x3 depthwise (BatchNorm, ReLU6) then a 1x1 convolution with bias and no
  activation: one for the box encodings, one for the class logits (each has its own depthwise).

Every convolution pads as TF's "SAME" does, asymmetrically where a stride-2 layer meets an even size, with the
pads computed once from the configured resolution: the graph has no shape arithmetic and exports with static
shapes. The layers are ``ssd_mobilenet_v1.network``'s ``ConvBNReLU6``, whose BatchNorm already has the release's
epsilon (1e-3, ``config.BN_EPS``). The module tree is named after the checkpoint's scopes
(``checkpoint.checkpoint_variable_names`` maps it one-to-one). MobileNetV2's own blocks are not reused: their
symmetric padding, PyTorch's BatchNorm epsilon and torchvision's indices fit neither TF's graph nor its names.

``forward`` takes NCHW pixels scaled to [-1, 1] (x / 127.5 - 1) and returns (box encodings (N, A, 4) as
(ty, tx, th, tw), class logits (N, A, num_classes + 1) before the sigmoid, background first), laid out as the API
concatenates them: per map, row-major over (y, x), then the anchor index.
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn.functional as F
from torch import Tensor, nn

from edgedeploy.models.mobilenet_v2.network import MobileNetV2
from edgedeploy.models.ssd_heads import flatten_heads
from edgedeploy.models.ssd_mobilenet_v1.network import ConvBNReLU6
from edgedeploy.models.ssdlite_mobilenet_v2.config import (
    ANCHORS_PER_LOCATION,
    FEATURE_BLOCK,
    KERNEL_SIZE,
    SSDLiteMobileNetV2Config,
)

__all__ = ["ConvBN", "ExpandedConv", "ExtraLayer", "SSDLiteMobileNetV2", "SSDLitePredictor"]


class ConvBN(ConvBNReLU6):
    """``ConvBNReLU6`` without the activation: a block's linear projection (paper, section 3.2)."""

    def forward(self, x: Tensor) -> Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad)
        return self.bn(self.conv(x))


class ExpandedConv(nn.Module):
    """slim's expanded_conv: [1x1 expansion] -> 3x3 depthwise (stride) -> linear 1x1 projection (+ input)."""

    def __init__(self, in_ch: int, hidden: int, out_ch: int, stride: int, size: int):
        super().__init__()
        self.expand = ConvBNReLU6(in_ch, hidden, 1, 1, size) if hidden != in_ch else None
        self.depthwise = ConvBNReLU6(hidden, hidden, 3, stride, size, groups=hidden)
        self.project = ConvBN(hidden, out_ch, 1, 1, self.depthwise.out_size)
        self.use_residual = stride == 1 and in_ch == out_ch
        self.out_size = self.depthwise.out_size

    def expanded(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(the block's output, its expansion output): SSD reads the latter of expanded_conv_13."""
        hidden = x if self.expand is None else self.expand(x)
        out = self.project(self.depthwise(hidden))
        return (x + out if self.use_residual else out), hidden

    def forward(self, x: Tensor) -> Tensor:
        return self.expanded(x)[0]


class ExtraLayer(nn.Sequential):
    """One extra SSDLite map: 1x1 (half depth) -> 3x3 depthwise stride 2 -> 1x1, each BatchNorm + ReLU6."""

    def __init__(self, in_ch: int, reduce_ch: int, out_ch: int, size: int):
        depthwise = ConvBNReLU6(reduce_ch, reduce_ch, KERNEL_SIZE, 2, size, groups=reduce_ch)
        super().__init__(OrderedDict(reduce=ConvBNReLU6(in_ch, reduce_ch, 1, 1, size), depthwise=depthwise,
                                     pointwise=ConvBNReLU6(reduce_ch, out_ch, 1, 1, depthwise.out_size)))
        self.out_size = depthwise.out_size


class SSDLitePredictor(nn.Module):
    """One map's box-encoding and class predictors: each a 3x3 depthwise (BatchNorm, ReLU6) then a 1x1 with bias."""

    def __init__(self, in_ch: int, size: int, anchors: int, classes: int):
        super().__init__()
        self.box_depthwise = ConvBNReLU6(in_ch, in_ch, KERNEL_SIZE, 1, size, groups=in_ch)
        self.box_encoding = nn.Conv2d(in_ch, anchors * 4, 1)
        self.class_depthwise = ConvBNReLU6(in_ch, in_ch, KERNEL_SIZE, 1, size, groups=in_ch)
        self.class_prediction = nn.Conv2d(in_ch, anchors * classes, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.box_encoding(self.box_depthwise(x)), self.class_prediction(self.class_depthwise(x))


class SSDLiteMobileNetV2(nn.Module):
    def __init__(self, config: SSDLiteMobileNetV2Config | None = None):
        super().__init__()
        self.config = config = config or SSDLiteMobileNetV2Config()
        self.stem = ConvBNReLU6(3, config.stem_channels(), 3, 2, config.resolution)
        size, blocks = self.stem.out_size, []
        for in_ch, hidden, out_ch, stride in config.blocks():
            blocks.append(ExpandedConv(in_ch, hidden, out_ch, stride, size))
            size = blocks[-1].out_size
        self.blocks = nn.ModuleList(blocks)
        self.head = ConvBNReLU6(config.blocks()[-1][2], config.head_channels(), 1, 1, size)
        in_ch, extras = config.head_channels(), []
        for reduce_ch, out_ch in config.extra_channels():
            extras.append(ExtraLayer(in_ch, reduce_ch, out_ch, size))
            in_ch, size = out_ch, extras[-1].out_size
        self.extras = nn.ModuleList(extras)
        classes = config.num_classes + 1
        self.predictors = nn.ModuleList(
            SSDLitePredictor(ch, s, k, classes)
            for ch, s, k in zip(config.feature_channels(), config.feature_map_sizes(), ANCHORS_PER_LOCATION))
        # (map size, anchors per cell) of each predictor: the reshapes' static sizes.
        self.grids = tuple(zip(config.feature_map_sizes(), ANCHORS_PER_LOCATION))
        self._init_weights()

    # torchvision's initialisation, as the classifier's (`random` weights behave like an untrained model).
    _init_weights = MobileNetV2._init_weights

    def features(self, x: Tensor) -> list[Tensor]:
        """The six maps the predictors read, finest first."""
        x = self.stem(x)
        maps = []
        for index, block in enumerate(self.blocks):
            if index == FEATURE_BLOCK:
                x, expanded = block.expanded(x)
                maps.append(expanded)
            else:
                x = block(x)
        x = self.head(x)
        maps.append(x)
        for extra in self.extras:
            x = extra(x)
            maps.append(x)
        return maps

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        predictions = [predictor(feature) for feature, predictor in zip(self.features(x), self.predictors)]
        return flatten_heads(predictions, self.grids, self.config.num_classes + 1)
