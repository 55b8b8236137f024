"""Which COCO category a detector's class index means.

Detectors disagree on COCO's numbering: TF's Object Detection API (and Google's .tflite detectors) score 90
ids (1..90, ten of them never used) after a background slot at index 0, while torchvision's and
Ultralytics' heads score the 80 real categories contiguously. A model records its scheme; the task maps its
class indices (background removed) to the annotations' category ids through it, and refuses annotations
whose categories the scheme does not know.
"""

from __future__ import annotations

import numpy as np

from edgedeploy.core.errors import ConfigError, DataError

__all__ = ["COCO80_IDS", "COCO80_NAMES", "CONTIGUOUS", "LABEL_SCHEMES", "category_ids", "category_name",
           "check_categories"]

CONTIGUOUS = "contiguous"

# The 80 categories of COCO 2014/2017 by their official ids (instances_val2017.json's "categories").
COCO80_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32,
              33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
              60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90)
# Their names, in the same order (for pictures).
COCO80_NAMES = ("person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
                "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
                "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag",
                "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
                "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "wine glass", "cup", "fork",
                "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog",
                "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet", "tv",
                "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
                "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush")
# scheme -> the category id of each class index (background already removed).
LABEL_SCHEMES: dict[str, np.ndarray] = {
    "coco90": np.arange(1, 91, dtype=np.int64),
    "coco80": np.asarray(COCO80_IDS, dtype=np.int64),
}


def category_ids(scheme: str, classes: int) -> np.ndarray:
    """The category id of each of a model's ``classes`` class indices under ``scheme`` ("contiguous": a model
    trained on its own categories numbered 1..classes)."""
    if scheme == CONTIGUOUS:
        return np.arange(1, classes + 1, dtype=np.int64)
    if scheme not in LABEL_SCHEMES:
        raise ConfigError(f"unknown label scheme {scheme!r}; expected one of {', '.join(LABEL_SCHEMES)}, {CONTIGUOUS}")
    ids = LABEL_SCHEMES[scheme]
    if classes != len(ids):
        raise ConfigError(f"label scheme {scheme} has {len(ids)} classes, the model scores {classes}")
    return ids


def check_categories(scheme: str, classes: int, annotated: dict[int, str], source: str) -> None:
    """DataError when the annotations use a category id the model's scheme cannot predict."""
    known = set(category_ids(scheme, classes).tolist())
    unknown = sorted(set(annotated) - known)
    if unknown:
        raise DataError(f"{source}: category ids {unknown[:5]} ({annotated[unknown[0]]!r}, ...) are unknown to the "
                        f"model, whose classes are COCO's {scheme} ids")


def category_name(category_id: int) -> str:
    """A COCO category's name, or the id itself for a category COCO does not have."""
    names = dict(zip(COCO80_IDS, COCO80_NAMES))
    return names.get(int(category_id), str(int(category_id)))
