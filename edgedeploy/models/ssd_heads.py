"""What SSD families share: their size checks, and how their per-map predictions become the two raw heads in
the order TF's Object Detection API concatenates them (so anchors, .tflite files and checkpoints line up).
Torch-free at import: the families' configs (validated without torch) use the checks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.limits import check_width

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["check_detector_size", "flatten_heads"]


def check_detector_size(config: object, resolutions: tuple[int, int], usual: str) -> None:
    """ConfigError for a width (edgedeploy.core.limits), resolution or class count outside the family's range
    (``usual``: its own size)."""
    width, resolution, classes = (getattr(config, name) for name in ("width", "resolution", "num_classes"))
    check_width(width)
    if not resolutions[0] <= resolution <= resolutions[1]:
        raise ConfigError(f"input resolution {resolution} is outside [{resolutions[0]}, {resolutions[1]}] ({usual})")
    if classes < 1:
        raise ConfigError(f"class count must be positive, got {classes}")


def flatten_heads(predictions: Iterable[tuple[Tensor, Tensor]], grids: Iterable[tuple[int, int]], classes: int
                  ) -> tuple[Tensor, Tensor]:
    """Each map's (box encodings, class logits) NCHW -> box encodings (N, A, 4) and class logits (N, A, classes):
    NHWC, then (h, w, anchor, value), TF's reshape order; maps finest first. ``grids``: each map's (size,
    anchors per cell)."""
    import torch

    boxes, scores = [], []
    for (box, score), (size, anchors) in zip(predictions, grids):
        count = size * size * anchors  # -1 below is the batch
        boxes.append(box.permute(0, 2, 3, 1).reshape(-1, count, 4))
        scores.append(score.permute(0, 2, 3, 1).reshape(-1, count, classes))
    return torch.cat(boxes, 1), torch.cat(scores, 1)
