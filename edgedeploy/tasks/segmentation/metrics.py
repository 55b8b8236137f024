"""Segmentation metrics: per-class intersection and union counts, summed over a set of images.

The model's logits (its input resolution) are resized bilinearly to each mask's size (half-pixel
centres, ``align_corners=False``: PyTorch's ``F.interpolate`` and TF's ``resize_bilinear`` default) and
the argmax is scored against the mask; ignored pixels are not counted. mIoU is the mean IoU over the
classes present in the set's masks, from counts summed over all images (exact across shards), not a
mean of per-image figures. Per image the counts are kept too: they are the evidence that pairs two
models image by image (a bootstrap of the set-level mIoU, Wilcoxon on per-image IoU).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgedeploy.core.errors import DataError
from edgedeploy.core.stats import PairedComparison, paired_scores
from edgedeploy.tasks.base import Accumulator, Records, pct
from edgedeploy.tasks.segmentation.data import Mask

__all__ = ["SegmentationAccumulator", "resize_bilinear", "predicted_classes", "set_miou", "image_iou",
           "paired_miou", "COUNTS"]

# The per-image, per-class counts: pixels both labeled and predicted c, predicted c, labeled c.
COUNTS = ("intersection", "predicted", "labeled")


def _axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of a half-pixel bilinear resize along one axis (PyTorch's arithmetic)."""
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    low = np.minimum(src.astype(np.int64), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    return low, high, (src - low).astype(np.float32)


def resize_bilinear(scores: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C) -> (size[0], size[1], C), bilinear with half-pixel centres."""
    (h_low, h_high, h_w), (w_low, w_high, w_w) = _axis(scores.shape[0], size[0]), _axis(scores.shape[1], size[1])
    rows = scores[h_low] * (1 - h_w)[:, None, None] + scores[h_high] * h_w[:, None, None]
    return rows[:, w_low] * (1 - w_w)[None, :, None] + rows[:, w_high] * w_w[None, :, None]


def predicted_classes(scores: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The class map of one image's logits (H, W, C) at ``size`` (rows, columns)."""
    if scores.shape[:2] == tuple(size):
        return scores.argmax(-1)
    return resize_bilinear(scores, size).argmax(-1)


def _iou(counts: dict[str, np.ndarray], axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """(per-class IoU, present) from summed counts; present: classes with labeled pixels."""
    inter, pred, lab = (counts[k].astype(np.float64) for k in COUNTS)
    union = pred + lab - inter
    return inter / np.maximum(union, 1.0), lab > 0


def set_miou(counts: dict[str, np.ndarray]) -> np.ndarray:
    """mIoU (points) over the classes present, from counts summed over images (last axis: classes)."""
    iou, present = _iou(counts)
    return 100.0 * (iou * present).sum(-1) / np.maximum(present.sum(-1), 1)


def image_iou(records: Records) -> np.ndarray:
    """Per image, the mean IoU over the classes labeled or predicted in it (points)."""
    inter, pred, lab = (records[k].astype(np.float64) for k in COUNTS)
    union = pred + lab - inter
    seen = union > 0
    return 100.0 * (np.where(seen, inter / np.maximum(union, 1.0), 0.0)).sum(1) / np.maximum(seen.sum(1), 1)


def paired_miou(reference: Records, candidate: Records, confidence: float) -> PairedComparison:
    """The mIoU drop (points) with its bootstrap interval over images and Wilcoxon on per-image IoU."""
    ref = {k: reference[k] for k in COUNTS}
    cand = {k: candidate[k] for k in COUNTS}
    classes = ref["labeled"].shape[1]

    def drop(indices: np.ndarray) -> np.ndarray:
        # The candidate is scored on the classes present in the labels, as the reference is.
        return set_miou({k: v[indices].sum(-2) for k, v in ref.items()}) - \
            set_miou({k: v[indices].sum(-2) for k, v in cand.items()})

    return paired_scores(drop, image_iou(reference), image_iou(candidate), confidence,
                         values_per_image=2 * len(COUNTS) * classes)


class SegmentationAccumulator(Accumulator):
    """Per-class intersection / predicted / labeled pixel counts over the set."""

    SUMS = COUNTS

    def __init__(self) -> None:
        super().__init__()
        self.intersection = self.predicted = self.labeled = np.zeros(0, np.int64)

    def _update(self, scores: np.ndarray, labels: list[Any], probabilities: tuple[bool, bool],
                reference: np.ndarray | None) -> None:
        classes = scores.shape[-1]
        if not len(self.labeled):
            self.intersection, self.predicted, self.labeled = (np.zeros(classes, np.int64) for _ in COUNTS)
        rows = {k: np.zeros((len(scores), classes), np.int64) for k in COUNTS}
        for i, (image_scores, mask) in enumerate(zip(scores, labels)):
            if mask is None:
                continue
            counts = _counts(image_scores, mask, classes)
            for k in COUNTS:
                rows[k][i] = counts[k]
        for k in COUNTS:
            setattr(self, k, getattr(self, k) + rows[k].sum(0))
        self._record(**rows)

    def _merge(self, other: Accumulator) -> None:
        assert isinstance(other, SegmentationAccumulator)
        if not len(other.labeled):
            return
        for k in COUNTS:
            mine = getattr(self, k)
            setattr(self, k, getattr(other, k).copy() if not len(mine) else mine + getattr(other, k))

    def metrics(self, with_reference: bool) -> dict[str, Any]:
        if not len(self.labeled) or not self.labeled.sum():
            return {"miou": None, "pixel_accuracy": None, "classes": 0, "class_iou": {}}
        counts = {k: getattr(self, k) for k in COUNTS}
        iou, present = _iou(counts)
        return {"miou": round(float(set_miou(counts)), 4),
                "pixel_accuracy": pct(int(self.intersection.sum()), int(self.labeled.sum())),
                "classes": int(present.sum()),
                "class_iou": {str(c): round(100.0 * float(iou[c]), 4) for c in np.flatnonzero(present)}}


def _counts(scores: np.ndarray, mask: Mask, classes: int) -> dict[str, np.ndarray]:
    """One image's per-class counts at the mask's resolution."""
    labels = mask.labels
    valid = labels != mask.ignore_index
    bad = labels[valid & ((labels >= classes) | (labels < 0))]
    if bad.size:
        raise DataError(f"{mask.path}: class value {int(bad.max())} is outside the model's {classes} classes "
                        f"(0-{classes - 1}; ignore index {mask.ignore_index})")
    predicted = predicted_classes(scores, labels.shape)[valid]
    truth = labels[valid]
    return {"intersection": np.bincount(truth[predicted == truth], minlength=classes),
            "predicted": np.bincount(predicted, minlength=classes),
            "labeled": np.bincount(truth, minlength=classes)}
