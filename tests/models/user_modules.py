"""Users' own models, as ``--model user_modules:FACTORY`` names them (this folder on sys.path)."""

from __future__ import annotations

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


def not_a_module() -> object:
    return {"weights": 1}


def two_outputs() -> nn.Module:
    class TwoHeads(TinyCNN):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
            out = super().forward(x)
            return out, out

    return TwoHeads()


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
