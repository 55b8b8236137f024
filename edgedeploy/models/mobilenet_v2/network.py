"""MobileNetV2 (Sandler et al., 2018) with torchvision-compatible state_dict keys.

The module tree mirrors ``torchvision.models.mobilenet_v2`` exactly (``features.N``
blocks, ``conv`` sub-sequences, ``classifier.1``) so that torchvision checkpoints
load unchanged, without depending on torchvision at run time.
"""

from __future__ import annotations

from torch import Tensor, nn

from edgedeploy.models.mobilenet_v2.config import INVERTED_RESIDUAL_SETTINGS, MobileNetV2Config, make_divisible

__all__ = ["MobileNetV2", "make_divisible", "INVERTED_RESIDUAL_SETTINGS"]


class ConvBNReLU6(nn.Sequential):
    """Conv -> BatchNorm -> ReLU6; indices 0/1/2 match torchvision's Conv2dNormActivation."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise (3x3) -> linear projection (1x1), residual when shapes allow."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int, expand: bool | None = None):
        """``expand``: whether the block has its 1x1 expansion (default: when ``expansion`` is not 1; PaddleClas'
        blocks always have it)."""
        super().__init__()
        hidden = int(round(in_ch * expansion))
        self.use_residual = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expansion != 1 if expand is None else expand:
            layers.append(ConvBNReLU6(in_ch, hidden, kernel=1))
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),
            # Linear bottleneck: no activation after the projection (paper, section 3.2).
            nn.Conv2d(hidden, out_ch, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = out_ch

    def forward(self, x: Tensor) -> Tensor:
        if self.use_residual:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, config: MobileNetV2Config = MobileNetV2Config()):
        super().__init__()
        self.config = config
        layout = config.layout()
        self.last_channel = layout.head
        blocks: list[nn.Module] = [ConvBNReLU6(3, layout.stem, stride=2)]
        expansions = [t for t, _, n, _ in INVERTED_RESIDUAL_SETTINGS for _ in range(n)]
        for (in_ch, _, out_ch, stride, expand), t in zip(layout.blocks, expansions):
            blocks.append(InvertedResidual(in_ch, out_ch, stride, t, expand))
        blocks.append(ConvBNReLU6(layout.blocks[-1][2], self.last_channel, kernel=1))
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.Dropout(p=config.dropout), nn.Linear(self.last_channel, config.num_classes)
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation, so `random` weights behave like an untrained reference.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        # Global average pool as a mean (exports to ReduceMean/GlobalAveragePool,
        # no adaptive-pool op that some converters reject).
        x = x.mean((2, 3))
        return self.classifier(x)
