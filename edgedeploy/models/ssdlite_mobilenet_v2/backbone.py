"""The ImageNet-trained MobileNetV2 as SSDLite's backbone (``--weights sample``): the classifier family's sample
weights (Google's TF2 MobileNetV2 1.0/224) copied convolution by convolution into the detector's feature
extractor, the extra layers and box predictors left at their seeded initialization: the starting point a user
fine-tunes on their own boxes (the official checkpoint, where a user has it, is ``--weights model.ckpt``).

The classifier's 52 convolutions (stem, 17 inverted residual blocks, the final 1x1 to 1280) are the detector's
first 52 in forward order (edgedeploy.models.mobilenet_v2.transfer).
"""

from __future__ import annotations

from pathlib import Path

import torch

from edgedeploy.models.mobilenet_v2.transfer import copy_backbone, read_classifier
from edgedeploy.models.ssdlite_mobilenet_v2.config import SSDLiteMobileNetV2Config
from edgedeploy.models.ssdlite_mobilenet_v2.network import SSDLiteMobileNetV2

__all__ = ["read_backbone_state_dict", "BACKBONE_CONVS", "HEAD_SEED"]

# The classifier's convolutions before its classifier: what the detector's feature extractor shares.
BACKBONE_CONVS = 52
# The detector's own layers start from this seed (the same head every time).
HEAD_SEED = 0


def read_backbone_state_dict(path: Path, config: SSDLiteMobileNetV2Config | None = None) -> dict[str, torch.Tensor]:
    """The detector's state_dict with the classifier checkpoint at ``path`` as its backbone, the rest seeded."""
    config = config or SSDLiteMobileNetV2Config()
    classifier = read_classifier(path, config.width, config.name)
    torch.manual_seed(HEAD_SEED)
    detector = SSDLiteMobileNetV2(config).eval()
    copy_backbone(classifier, detector, BACKBONE_CONVS, path, config.name)
    return {k: v.clone() for k, v in detector.state_dict().items()}
