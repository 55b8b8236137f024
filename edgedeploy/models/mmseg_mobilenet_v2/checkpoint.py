"""mmsegmentation checkpoints (``{'meta': ..., 'state_dict': ...}``, unwrapped by edgedeploy.models.weights like
any checkpoint, a DataParallel ``module.`` prefix included) in the M-V2-D8 families' names: the names are mmseg's
own, so only what deployment does not run is dropped, the ``auxiliary_head`` (an FCN on layer5 that only adds a
training loss)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from edgedeploy.models.mmseg_mobilenet_v2.config import MMSegMobileNetV2Config
from edgedeploy.models.mobilenet_v2.transfer import copy_backbone, read_classifier

__all__ = ["from_mmseg", "read_backbone_state_dict", "TRAINING_ONLY_PREFIX", "BACKBONE_CONVS", "HEAD_SEED"]

TRAINING_ONLY_PREFIX = "auxiliary_head."


def from_mmseg(state: dict[str, Any]) -> dict[str, Any] | None:
    """``state`` without its training-only head; None when it has none (already in the family's names, or not
    an mmseg checkpoint: the key check then names what does not fit)."""
    if not any(k.startswith(TRAINING_ONLY_PREFIX) for k in state):
        return None
    return {k: v for k, v in state.items() if not k.startswith(TRAINING_ONLY_PREFIX)}


# mmseg's backbone has the classifier's convolutions up to its last 1x1 (to 1280): 51 of 52.
BACKBONE_CONVS = 51
# The heads start from this seed (the same head every time).
HEAD_SEED = 0


def read_backbone_state_dict(path: Path, config: MMSegMobileNetV2Config) -> dict[str, torch.Tensor]:
    """``--weights sample``: the ImageNet MobileNetV2 (the classifier's sample weights) as the dilated backbone,
    as mmseg's configs start training from it (``pretrained='mmcls://mobilenet_v2'``), and a seeded head whose batch
    norms are standardized on what that backbone computes: not a trained segmentor, a model with a trained one's
    numerics (its int8 copies are as faithful as a trained model's, where random backbones amplify any noise)."""
    from edgedeploy.models.mmseg_mobilenet_v2.network import MMSegMobileNetV2

    classifier = read_classifier(path, config.width, config.name)
    torch.manual_seed(HEAD_SEED)
    model = MMSegMobileNetV2(config)
    copy_backbone(classifier, model.backbone, BACKBONE_CONVS, path, config.name)
    model.standardize_batch_norms(model.decode_head)
    return {k: v.clone() for k, v in model.state_dict().items()}
