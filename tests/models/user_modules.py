"""Users' own models, as ``--model user_modules:FACTORY`` names them (this folder on sys.path)."""

from __future__ import annotations

import os
import sys

import torch
from torch import nn


class TinyCNN(nn.Module):
    """A small non-MobileNet classifier: plain convolutions, batch norm, max pooling, a linear head."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.features(x), 1))


def tiny_cnn() -> nn.Module:
    return TinyCNN()


def mobilenet_v3_small() -> nn.Module:
    """torchvision's MobileNetV3-Small, random weights, 10 classes (hardswish, squeeze-excitation)."""
    return import_torchvision().models.mobilenet_v3_small(num_classes=10)


def needs_arguments(classes: int) -> nn.Module:
    return TinyCNN(classes)


def raises() -> nn.Module:
    raise RuntimeError("checkpoint server unreachable")


def exits() -> nn.Module:
    sys.exit(0)


def hard_exit() -> nn.Module:
    os._exit(0)


def interrupts() -> nn.Module:
    raise KeyboardInterrupt


class _ExitsInForward(TinyCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sys.exit("bye")


def exits_in_forward() -> nn.Module:
    return _ExitsInForward()


class _HardExitOnSecondForward(TinyCNN):
    """Passes the probe (one forward), then ends the process on the next forward (the export's trace)."""

    calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        type(self).calls += 1
        if type(self).calls > 1:
            os._exit(3)
        return super().forward(x)


def hard_exit_later() -> nn.Module:
    return _HardExitOnSecondForward()


class _NaNOutputs(TinyCNN):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * float("nan")


def nan_outputs() -> nn.Module:
    return _NaNOutputs()


def not_a_module() -> object:
    return {"weights": 1}


def two_outputs() -> nn.Module:
    class TwoHeads(TinyCNN):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
            out = super().forward(x)
            return out, out

    return TwoHeads()


class TinyDetector(nn.Module):
    """A user's own detector: two 8x8 maps (stride 8 and 16 at 64 px), 3 anchors a cell, 3 classes; its forward
    returns its heads by name, and it declares its post-processing as the registered families do."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=8, padding=1), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
        self.boxes = nn.ModuleList([nn.Conv2d(8, 3 * 4, 1), nn.Conv2d(8, 3 * 4, 1)])
        self.scores = nn.ModuleList([nn.Conv2d(8, 3 * 4, 1), nn.Conv2d(8, 3 * 4, 1)])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        first = self.stem(x)
        maps = [first, self.down(first)]
        boxes = [b(m).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 4) for b, m in zip(self.boxes, maps)]
        scores = [s(m).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 4) for s, m in zip(self.scores, maps)]
        return {"box_encodings": torch.cat(boxes, 1), "class_logits": torch.cat(scores, 1)}

    def detection_parameters(self) -> dict[str, object]:
        return {"anchors": {"feature_map_sizes": [8, 4], "min_scale": 0.2, "max_scale": 0.9,
                            "aspect_ratios": [1.0, 2.0, 0.5], "interpolated_scale_aspect_ratio": 0.0,
                            "reduce_boxes_in_lowest_layer": False},
                "box_scales": [10.0, 10.0, 5.0, 5.0], "labels": "contiguous",
                "nms": {"score_threshold": 0.01, "iou_threshold": 0.5, "max_detections": 20, "mode": "per-class"}}


def tiny_detector() -> nn.Module:
    return TinyDetector()


def import_torchvision():  # type: ignore[no-untyped-def]
    """torchvision, also beside a CPU build of torch its compiled ops were not built for.

    PyPI's torchvision wheels carry CUDA-linked ops; beside torch's CPU build they do not load, and
    torchvision's own fake-kernel registration for nms/qnms then fails at import (those two lack the guard
    the others have). The models are plain Python: declaring the two schemas lets the import finish; the
    ops themselves stay unavailable, and no model used here calls them.
    """
    try:
        import torchvision
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        for op in ("nms", "qnms"):
            try:
                torch.library.define(f"torchvision::{op}", "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            except RuntimeError:
                pass  # declared already
        import torchvision
    return torchvision


def mobilenet_v2_sample() -> nn.Module:
    """edgedeploy's own MobileNetV2 with the sample weights, handed over as a user's module would be."""
    from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config
    from edgedeploy.models.weights import build_model

    return build_model(MobileNetV2Config(), "sample")[0]
