"""timm's MobileNetV2 checkpoints (``mobilenetv2_035`` ... ``mobilenetv2_140``) in torchvision's key names.

timm builds MobileNetV2 with its EfficientNet builder: ``conv_stem``/``bn1``, ``blocks.<stage>.<block>``
(the first block a depthwise-separable ``conv_dw``/``bn1``/``conv_pw``/``bn2``, the others inverted
residuals ``conv_pw``/``bn1``/``conv_dw``/``bn2``/``conv_pwl``/``bn3``), ``conv_head``/``bn2`` and a
bare ``classifier``. The layers and their order are torchvision's, so the mapping is a renaming; the
deeper ``110d``/``120d`` variants have more blocks than torchvision's layout and fail the key check.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["from_timm"]

_BLOCK = re.compile(r"^blocks\.(\d+)\.(\d+)\.(\w+)\.(\w+)$")
# Layer names inside a block -> torchvision's path inside features.<n>.conv
_SEPARABLE = {"conv_dw": "0.0", "bn1": "0.1", "conv_pw": "1", "bn2": "2"}
_INVERTED = {"conv_pw": "0.0", "bn1": "0.1", "conv_dw": "1.0", "bn2": "1.1", "conv_pwl": "2", "bn3": "3"}


def from_timm(state: Mapping[str, Any]) -> dict[str, Any] | None:
    """``state`` renamed to torchvision's keys, or None when it is not a timm MobileNetV2 state_dict."""
    if "conv_stem.weight" not in state or "conv_head.weight" not in state:
        return None
    blocks = sorted({(int(m.group(1)), int(m.group(2))) for k in state if (m := _BLOCK.match(k))})
    index = {block: n + 1 for n, block in enumerate(blocks)}  # features.0 is the stem
    head = len(blocks) + 1
    renamed: dict[str, Any] = {}
    for key, value in state.items():
        match = _BLOCK.match(key)
        if match:
            block = (int(match.group(1)), int(match.group(2)))
            layers = _SEPARABLE if block == blocks[0] else _INVERTED
            name = match.group(3)
            new = f"features.{index[block]}.conv.{layers[name]}.{match.group(4)}" if name in layers else key
        else:
            top = {"conv_stem": "features.0.0", "bn1": "features.0.1", "conv_head": f"features.{head}.0",
                   "bn2": f"features.{head}.1", "classifier": "classifier.1"}
            prefix, _, rest = key.partition(".")
            new = f"{top[prefix]}.{rest}" if prefix in top else key
        renamed[new] = value
    return renamed
