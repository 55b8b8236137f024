"""mmsegmentation's M-V2-D8 segmentors in PyTorch, module for module: every parameter has the name and shape it
has in an mmseg checkpoint (``backbone.layer3.0.conv.1.conv.weight``, ``decode_head.aspp_modules.2.conv.weight``),
so a checkpoint's ``state_dict`` loads as it is (its training-only ``auxiliary_head`` dropped,
``edgedeploy.models.mmseg_mobilenet_v2.checkpoint``).

Forward passes follow mmseg's: the decode head's input is the backbone's last map (``in_index=3``: layer7, 320
channels at width 1.0, stride 8), every resize is bilinear with ``align_corners=False``, and the segmentor resizes
the logits to the input (``EncoderDecoder.inference`` in whole-image mode).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from edgedeploy.models.mmseg_mobilenet_v2.config import (
    ASPP_DILATIONS,
    BACKBONE_DILATIONS,
    BACKBONE_STRIDES,
    C1_CHANNELS,
    HEAD_CHANNELS,
    PSP_BINS,
    MMSegMobileNetV2Config,
)
from edgedeploy.models.mobilenet_v2.config import INVERTED_RESIDUAL_SETTINGS, STEM_CHANNELS, make_divisible
from edgedeploy.models.mobilenet_v2.network import MobileNetV2

__all__ = ["MMSegMobileNetV2", "AdaptiveAvgPool", "BACKBONE_OUT_INDICES"]

# The backbone's outputs (mmseg's out_indices): layer2 (stride 4), layer3, layer5, layer7 (stride 8).
BACKBONE_OUT_INDICES = (1, 2, 4, 6)


def _resize(x: Tensor, size: torch.Size | tuple[int, int]) -> Tensor:
    """mmseg's ``resize`` as its heads call it: bilinear, ``align_corners=False``."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ConvModule(nn.Module):
    """mmcv's ConvModule as the M-V2-D8 models build it: conv (no bias: a norm follows) -> ``bn`` -> activation."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, dilation: int = 1,
                 groups: int = 1, act: type[nn.Module] | None = nn.ReLU):
        super().__init__()
        padding = dilation * (kernel - 1) // 2
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation, groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.activate = act() if act is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.activate(self.bn(self.conv(x)))


class DepthwiseSeparableConvModule(nn.Module):
    """mmcv's: a depthwise ConvModule then a pointwise one, each with its norm and ReLU."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1):
        super().__init__()
        self.depthwise_conv = ConvModule(in_ch, in_ch, 3, dilation=dilation, groups=in_ch)
        self.pointwise_conv = ConvModule(in_ch, out_ch, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class InvertedResidual(nn.Module):
    """mmseg's (``mmseg.models.utils.InvertedResidual``): [1x1 expand,] 3x3 depthwise (dilated), 1x1 linear."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int, dilation: int):
        super().__init__()
        hidden = int(round(in_ch * expansion))
        self.use_res_connect = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = [ConvModule(in_ch, hidden, 1, act=nn.ReLU6)] if expansion != 1 else []
        layers += [ConvModule(hidden, hidden, 3, stride, dilation, groups=hidden, act=nn.ReLU6),
                   ConvModule(hidden, out_ch, 1, act=None)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class Backbone(nn.Module):
    """mmseg's MobileNetV2 with the M-V2-D8 strides and dilations: ``conv1``, ``layer1``-``layer7``, no 1280
    conv; channels ``make_divisible(c * widen_factor, 8)``. Returns layer2, layer3, layer5 and layer7's maps."""

    def __init__(self, width: float):
        super().__init__()
        in_ch = make_divisible(STEM_CHANNELS * width)
        self.conv1 = ConvModule(3, in_ch, 3, stride=2, act=nn.ReLU6)
        self.layer_names: list[str] = []
        for i, ((t, c, n, _), stride, dilation) in enumerate(
                zip(INVERTED_RESIDUAL_SETTINGS, BACKBONE_STRIDES, BACKBONE_DILATIONS)):
            out_ch = make_divisible(c * width)
            blocks = []
            for j in range(n):
                # mmseg's make_layer: the stride and the dilation go to a stage's first block only.
                blocks.append(InvertedResidual(in_ch, out_ch, stride if j == 0 else 1, t, dilation if j == 0 else 1))
                in_ch = out_ch
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            self.layer_names.append(f"layer{i + 1}")
        self.channels = [make_divisible(INVERTED_RESIDUAL_SETTINGS[i][1] * width) for i in BACKBONE_OUT_INDICES]

    def forward(self, x: Tensor) -> list[Tensor]:
        x, outs = self.conv1(x), []
        for i, name in enumerate(self.layer_names):
            x = getattr(self, name)(x)
            if i in BACKBONE_OUT_INDICES:
                outs.append(x)
        return outs


class AdaptiveAvgPool(nn.Module):
    """``nn.AdaptiveAvgPool2d(bins)`` that every converter takes: a fixed-window average pool where the bins
    divide the map, else each bin's mean over PyTorch's own bin edges (floor(i * size / bins) to
    ceil((i + 1) * size / bins)), so the result equals AdaptiveAvgPool2d's while the exported graph holds only
    slices, means and concatenations (ONNX export refuses adaptive pooling whose bins do not divide the input)."""

    def __init__(self, bins: int):
        super().__init__()
        self.bins = bins

    def forward(self, x: Tensor) -> Tensor:
        with warnings.catch_warnings():
            # A traced export fixes the input size, so the map's size is a constant there: the bins' edges are too.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            height, width = int(x.shape[-2]), int(x.shape[-1])
        if self.bins == 1:
            # A mean, as MobileNetV2's and DeepLab's own image pooling: the global mean every format has.
            return x.mean((2, 3), keepdim=True)
        if height % self.bins == 0 and width % self.bins == 0:
            kernel = (height // self.bins, width // self.bins)
            return F.avg_pool2d(x, kernel, kernel)

        def edges(size: int) -> list[tuple[int, int]]:
            return [(i * size // self.bins, -(-(i + 1) * size // self.bins)) for i in range(self.bins)]

        rows = [torch.cat([x[..., top:bottom, left:right].mean((2, 3), keepdim=True)
                           for left, right in edges(width)], 3) for top, bottom in edges(height)]
        return torch.cat(rows, 2)


class DecodeHead(nn.Module):
    """mmseg's BaseDecodeHead's classifier: Dropout2d(0.1) (a no-op when deployed) then ``conv_seg``."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.dropout = nn.Dropout2d(0.1)
        self.conv_seg = nn.Conv2d(HEAD_CHANNELS, num_classes, 1)

    def cls_seg(self, x: Tensor) -> Tensor:
        return self.conv_seg(self.dropout(x))


class FCNHead(DecodeHead):
    """FCN (``num_convs=2, concat_input=True``): two 3x3 convs, the input concatenated back, a 3x3 conv."""

    def __init__(self, in_ch: int, num_classes: int):
        super().__init__(num_classes)
        self.convs = nn.Sequential(ConvModule(in_ch, HEAD_CHANNELS, 3), ConvModule(HEAD_CHANNELS, HEAD_CHANNELS, 3))
        self.conv_cat = ConvModule(in_ch + HEAD_CHANNELS, HEAD_CHANNELS, 3)

    def forward(self, inputs: list[Tensor]) -> Tensor:
        x = inputs[3]
        return self.cls_seg(self.conv_cat(torch.cat([x, self.convs(x)], 1)))


class PSPHead(DecodeHead):
    """PSPNet's pyramid pooling (bins 1, 2, 3, 6): each pooled, 1x1-projected and resized back, concatenated after
    the input, a 3x3 ``bottleneck``."""

    def __init__(self, in_ch: int, num_classes: int):
        super().__init__(num_classes)
        self.psp_modules = nn.ModuleList(nn.Sequential(AdaptiveAvgPool(b), ConvModule(in_ch, HEAD_CHANNELS))
                                         for b in PSP_BINS)
        self.bottleneck = ConvModule(in_ch + len(PSP_BINS) * HEAD_CHANNELS, HEAD_CHANNELS, 3)

    def forward(self, inputs: list[Tensor]) -> Tensor:
        x = inputs[3]
        pooled = [_resize(m(x), x.shape[2:]) for m in self.psp_modules]
        return self.cls_seg(self.bottleneck(torch.cat([x, *pooled], 1)))


class ASPPHead(DecodeHead):
    """DeepLabV3's ASPP: image pooling (resized back), a 1x1 conv and 3x3 convs at rates 12, 24, 36, concatenated,
    a 3x3 ``bottleneck``."""

    def __init__(self, in_ch: int, num_classes: int, separable: bool = False):
        super().__init__(num_classes)
        self.image_pool = nn.Sequential(AdaptiveAvgPool(1), ConvModule(in_ch, HEAD_CHANNELS))

        def branch(rate: int) -> nn.Module:
            if rate == 1:
                return ConvModule(in_ch, HEAD_CHANNELS)
            if separable:
                return DepthwiseSeparableConvModule(in_ch, HEAD_CHANNELS, rate)
            return ConvModule(in_ch, HEAD_CHANNELS, 3, dilation=rate)

        self.aspp_modules = nn.ModuleList(branch(r) for r in ASPP_DILATIONS)
        self.bottleneck = ConvModule((len(ASPP_DILATIONS) + 1) * HEAD_CHANNELS, HEAD_CHANNELS, 3)

    def aspp(self, x: Tensor) -> Tensor:
        pooled = _resize(self.image_pool(x), x.shape[2:])
        return self.bottleneck(torch.cat([pooled, *(m(x) for m in self.aspp_modules)], 1))

    def forward(self, inputs: list[Tensor]) -> Tensor:
        return self.cls_seg(self.aspp(inputs[3]))


class DepthwiseSeparableASPPHead(ASPPHead):
    """DeepLabV3+: separable ASPP, its output resized to the low-level (layer2, stride 4) features projected to 48
    channels, concatenated, two separable 3x3 convs."""

    def __init__(self, in_ch: int, c1_in_ch: int, num_classes: int):
        super().__init__(in_ch, num_classes, separable=True)
        self.c1_bottleneck = ConvModule(c1_in_ch, C1_CHANNELS)
        self.sep_bottleneck = nn.Sequential(DepthwiseSeparableConvModule(HEAD_CHANNELS + C1_CHANNELS, HEAD_CHANNELS),
                                            DepthwiseSeparableConvModule(HEAD_CHANNELS, HEAD_CHANNELS))

    def forward(self, inputs: list[Tensor]) -> Tensor:
        low = self.c1_bottleneck(inputs[0])
        x = _resize(self.aspp(inputs[3]), low.shape[2:])
        return self.cls_seg(self.sep_bottleneck(torch.cat([x, low], 1)))


class MMSegMobileNetV2(nn.Module):
    """mmseg's EncoderDecoder at inference: backbone, decode head, logits resized to the input."""

    def __init__(self, config: MMSegMobileNetV2Config):
        super().__init__()
        self.config = config
        self.backbone = Backbone(config.width)
        last = self.backbone.channels[3]
        if config.head == "DepthwiseSeparableASPPHead":
            self.decode_head: nn.Module = DepthwiseSeparableASPPHead(last, self.backbone.channels[0],
                                                                     config.num_classes)
        else:
            self.decode_head = {"FCNHead": FCNHead, "PSPHead": PSPHead, "ASPPHead": ASPPHead}[config.head](
                last, config.num_classes)
        MobileNetV2._init_weights(self)
        # mmseg's BaseDecodeHead.init_weights: conv_seg ~ N(0, 0.01), bias 0.
        nn.init.normal_(self.decode_head.conv_seg.weight, 0, 0.01)
        nn.init.zeros_(self.decode_head.conv_seg.bias)
        self.standardize_batch_norms(self)

    @torch.no_grad()
    def standardize_batch_norms(self, part: nn.Module) -> None:
        """Random layers as a trained network has them: the statistics of ``part``'s batch norms measured on seeded
        noise (the other layers as they are), so each one's output is standardized. With the identity statistics
        of a fresh init the activations shrink layer by layer to logits near 1e-10, whose int8 copies say nothing
        about a trained model's; a checkpoint replaces them all. 8 images of 64 px: a pooled branch's norm sees
        one value per image (with 2, PSPNet's variances were degenerate and its int8 agreed on 24-45% of pixels)."""
        norms = [m for m in part.modules() if isinstance(m, nn.BatchNorm2d)]
        self.eval()
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average: exactly this batch's statistics
            norm.train()
        self(torch.randn(8, 3, 64, 64, generator=torch.Generator().manual_seed(0)))
        for norm in norms:
            norm.momentum = 0.1
            norm.num_batches_tracked.zero_()
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return _resize(self.decode_head(self.backbone(x)), x.shape[2:])
