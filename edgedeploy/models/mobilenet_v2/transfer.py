"""The ImageNet-trained MobileNetV2 classifier as another family's backbone (``--weights sample`` of SSDLite and
the mmseg heads): its convolutions copied in forward order into the other network's first ones, each checked by
shape, each batch norm folded into the target's (whose epsilon may differ: 1e-3 in SSDLite against torchvision's
1e-5), so the backbone computes exactly what the classifier's does; the rest keeps its seeded initialization."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgedeploy.core.errors import WeightsError

__all__ = ["read_classifier", "copy_backbone"]


def _conv_bn_pairs(model: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Every convolution with the batch norm that follows it, in forward (registration) order."""
    modules = list(model.modules())
    pairs = []
    for i, module in enumerate(modules):
        if isinstance(module, nn.Conv2d):
            norm = next((m for m in modules[i + 1:] if isinstance(m, (nn.BatchNorm2d, nn.Conv2d))), None)
            if isinstance(norm, nn.BatchNorm2d):
                pairs.append((module, norm))
    return pairs


def read_classifier(path: Path, width: float, name: str) -> nn.Module:
    """The MobileNetV2 1.0 classifier checkpoint at ``path`` (the sample weights), for ``name`` of ``width``."""
    from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config
    from edgedeploy.models.mobilenet_v2.network import MobileNetV2

    if width != 1.0:
        raise WeightsError(f"{path}: the sample backbone is MobileNetV2 width 1.0; {name} is width {width}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises anything on a damaged file
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({exc.__class__.__name__})") from exc
    classifier = MobileNetV2(MobileNetV2Config())
    try:
        classifier.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: not the MobileNetV2 1.0 classifier's state_dict ({str(exc)[:120]})") from None
    return classifier


@torch.no_grad()
def copy_backbone(classifier: nn.Module, target: nn.Module, convolutions: int, path: Path, name: str) -> None:
    """Copy ``classifier``'s first ``convolutions`` convolutions (and their batch norms, folded) into ``target``'s."""
    theirs, mine = _conv_bn_pairs(classifier)[:convolutions], _conv_bn_pairs(target)[:convolutions]
    for (conv, norm), (conv_to, norm_to) in zip(theirs, mine):
        if conv.weight.shape != conv_to.weight.shape:
            raise WeightsError(f"{path}: a {list(conv.weight.shape)} convolution where {name}'s backbone has "
                               f"{list(conv_to.weight.shape)}")
        conv_to.weight.copy_(conv.weight)
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        # Folded: x * scale + shift through the target's norm with zero mean and unit (var + eps) denominator.
        norm_to.weight.copy_(scale)
        norm_to.bias.copy_(norm.bias - norm.running_mean * scale)
        norm_to.running_mean.zero_()
        norm_to.running_var.fill_(1.0 - norm_to.eps)
