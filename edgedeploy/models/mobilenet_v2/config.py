"""MobileNetV2's architecture hyper-parameters and channel counts, without torch: recipes, manifests and the CLI
validate them without importing a deep-learning framework."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.limits import MAX_WIDTH, MIN_WIDTH, check_width

__all__ = ["MobileNetV2Config", "ChannelLayout", "CHANNEL_RULES", "INVERTED_RESIDUAL_SETTINGS", "make_divisible",
           "MIN_WIDTH", "MAX_WIDTH", "MIN_RESOLUTION", "MAX_RESOLUTION"]

MIN_RESOLUTION, MAX_RESOLUTION = 96, 512
# The network downsamples by 32; other sizes would leave ragged feature maps.
RESOLUTION_STEP = 32
# (expansion t, output channels c, repeats n, first stride s), Table 2 of the paper.
INVERTED_RESIDUAL_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
# How a width multiplier becomes channel counts; the conventions differ below width 1.0 and at odd widths:
# - torchvision: ``_make_divisible(c * width, 8)`` everywhere, the last conv ``max(1280, 1280 * width)``; the
#   same counts as TF-slim's published checkpoints (built with finegrain_classification_mode=True).
# - paddleclas: PaddleClas' ``MobileNetV2_x*``: ``int(c * width)`` (truncated, no divisor), the last conv
#   ``int(1280 * width)`` above 1.0 else 1280, and every block has its 1x1 expansion, the t=1 block too.
# - tf-slim: slim's ``mobilenet_v2.mobilenet`` builder as defaulted (finegrain_classification_mode=False): the
#   torchvision rule, but the last conv narrows with the width too (``_make_divisible(1280 * width, 8)``).
CHANNEL_RULES = ("torchvision", "paddleclas", "tf-slim")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` (never down by more than 10%): slim's and torchvision's
    ``_make_divisible``."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


@dataclass(frozen=True)
class ChannelLayout:
    """The channel counts a width gives under a rule: the stem's, each block's (input, expanded, output, stride,
    whether it has a 1x1 expansion) and the last 1x1 conv's."""

    stem: int
    blocks: tuple[tuple[int, int, int, int, bool], ...]
    head: int


@dataclass(frozen=True)
class MobileNetV2Config:
    """Architecture hyper-parameters; validated on construction."""

    # The model registry's name for this family (edgedeploy.models.MODELS).
    arch: ClassVar[str] = "mobilenet_v2"
    width: float = 1.0
    resolution: int = 224
    num_classes: int = 1000
    dropout: float = 0.2
    # The channel convention (CHANNEL_RULES): how ``width`` becomes channel counts.
    channels: str = "torchvision"

    def __post_init__(self) -> None:
        check_width(self.width)
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
        if self.channels not in CHANNEL_RULES:
            raise ConfigError(f"unknown channel rule {self.channels!r}; expected one of {', '.join(CHANNEL_RULES)}")

    @property
    def name(self) -> str:
        suffix = "" if self.channels == "torchvision" else f"_{self.channels}"
        return f"mobilenet_v2_{self.width}_{self.resolution}{suffix}"

    def layout(self) -> ChannelLayout:
        """The channel counts of this width under this config's rule."""
        paddle = self.channels == "paddleclas"

        def scaled(c: int) -> int:
            return int(c * self.width) if paddle else make_divisible(c * self.width)

        if paddle:
            head = int(HEAD_CHANNELS * self.width) if self.width > 1.0 else HEAD_CHANNELS
        elif self.channels == "tf-slim":
            head = make_divisible(HEAD_CHANNELS * self.width)
        else:  # The head is never narrowed below 1280 channels (paper, section 5.1).
            head = make_divisible(HEAD_CHANNELS * max(1.0, self.width))
        in_ch = stem = scaled(STEM_CHANNELS)
        blocks = []
        for t, c, n, s in INVERTED_RESIDUAL_SETTINGS:
            out_ch = scaled(c)
            for i in range(n):
                blocks.append((in_ch, int(round(in_ch * t)), out_ch, s if i == 0 else 1, paddle or t != 1))
                in_ch = out_ch
        return ChannelLayout(stem, tuple(blocks), head)
