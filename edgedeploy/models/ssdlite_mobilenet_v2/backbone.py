"""The ImageNet-trained MobileNetV2 as SSDLite's backbone (``--weights sample``): the classifier family's sample
weights (Google's TF2 MobileNetV2 1.0/224) copied convolution by convolution into the detector's feature
extractor, the extra layers and box predictors left at their seeded initialization: the starting point a user
fine-tunes on their own boxes (the official checkpoint, where a user has it, is ``--weights model.ckpt``).

The classifier's 52 convolutions (stem, 17 inverted residual blocks, the final 1x1 to 1280) are the detector's
first 52 in forward order, each checked by shape; each one's batch norm is folded into the detector's (whose
epsilon differs: 1e-3 against torchvision's 1e-5) so the backbone computes exactly what the classifier's does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgedeploy.core.errors import WeightsError
from edgedeploy.models.ssdlite_mobilenet_v2.config import SSDLiteMobileNetV2Config
from edgedeploy.models.ssdlite_mobilenet_v2.network import SSDLiteMobileNetV2

__all__ = ["read_backbone_state_dict", "BACKBONE_CONVS", "HEAD_SEED"]

# The classifier's convolutions before its classifier: what the detector's feature extractor shares.
BACKBONE_CONVS = 52
# The detector's own layers start from this seed (the same head every time).
HEAD_SEED = 0


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


def read_backbone_state_dict(path: Path, config: SSDLiteMobileNetV2Config | None = None) -> dict[str, torch.Tensor]:
    """The detector's state_dict with the classifier checkpoint at ``path`` as its backbone, the rest seeded."""
    from edgedeploy.models.mobilenet_v2.config import MobileNetV2Config
    from edgedeploy.models.mobilenet_v2.network import MobileNetV2

    config = config or SSDLiteMobileNetV2Config()
    if config.width != 1.0:
        raise WeightsError(f"{path}: the sample backbone is MobileNetV2 width 1.0; {config.name} is width {config.width}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises anything on a damaged file
        raise WeightsError(f"{path}: not a readable PyTorch checkpoint ({exc.__class__.__name__})") from exc
    classifier = MobileNetV2(MobileNetV2Config())
    try:
        classifier.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: not the MobileNetV2 1.0 classifier's state_dict ({str(exc)[:120]})") from None
    torch.manual_seed(HEAD_SEED)
    detector = SSDLiteMobileNetV2(config).eval()
    theirs, mine = _conv_bn_pairs(classifier)[:BACKBONE_CONVS], _conv_bn_pairs(detector)[:BACKBONE_CONVS]
    with torch.no_grad():
        for (conv, norm), (target, target_norm) in zip(theirs, mine):
            if conv.weight.shape != target.weight.shape:
                raise WeightsError(f"{path}: a {list(conv.weight.shape)} convolution where {config.name}'s backbone has "
                                   f"{list(target.weight.shape)}")
            target.weight.copy_(conv.weight)
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            # Folded: x * scale + shift through the detector's norm with zero mean and unit (var + eps) denominator.
            target_norm.weight.copy_(scale)
            target_norm.bias.copy_(norm.bias - norm.running_mean * scale)
            target_norm.running_mean.zero_()
            target_norm.running_var.fill_(1.0 - target_norm.eps)
    return {k: v.clone() for k, v in detector.state_dict().items()}
