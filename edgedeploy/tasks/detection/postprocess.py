"""From a detector's raw heads to detections: box decoding against the anchors, then non-maximum
suppression, on the host (numpy), as TFLite's ``TFLite_Detection_PostProcess`` computes them.

- Decoding (the TF Object Detection API's faster-R-CNN box coder): an encoding (ty, tx, th, tw) scaled by
  (y, x, h, w) scales moves and stretches its anchor (ycenter, xcenter, h, w) into (ymin, xmin, ymax, xmax),
  normalized to the image.
- Suppression: "fast" (TFLite's default, ``use_regular_nms=false``): each anchor keeps its best class, then
  one class-agnostic greedy NMS; "per-class" (regular): greedy NMS in every class, then the best
  ``max_detections`` over all classes. Greedy NMS keeps the highest-scoring box and drops every remaining box
  whose IoU with it exceeds the threshold, as TFLite's and ONNX's ``NonMaxSuppression`` do.

What a model needs for this travels in its IO spec (``ModelIO.extra["detection"]``: anchors, scales, label
scheme, NMS options), so an exported artifact is post-processed exactly as its PyTorch model was.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from edgedeploy.core.errors import ConfigError, DataError
from edgedeploy.core.io_spec import ModelIO, Outputs
from edgedeploy.core.nms import NMS_MODES, POSTPROCESS
from edgedeploy.tasks.detection.anchors import AnchorSpec
from edgedeploy.tasks.detection.labels import category_ids

__all__ = ["BOX_ENCODINGS", "CLASS_LOGITS", "GRAPH_OUTPUTS", "NMS_MODES", "POSTPROCESS", "DetectionHead", "Detections",
           "NmsOptions", "box_iou", "count_matches", "decode_boxes", "graph_detections", "greedy_nms", "suppress"]

# The raw heads' output names: per-anchor box encodings (N, A, 4) and class logits (N, A, 1 + classes).
BOX_ENCODINGS, CLASS_LOGITS = "box_encodings", "class_logits"
# A graph that post-processes itself (TFLite_Detection_PostProcess's outputs, as Google's detectors have them):
# boxes (N, K, 4) (ymin, xmin, ymax, xmax) normalized, class indices (N, K) as floats (background removed),
# scores (N, K), and how many of the K rows are detections (N,).
GRAPH_OUTPUTS = ("detection_boxes", "detection_classes", "detection_scores", "num_detections")


@dataclass(frozen=True)
class Detections:
    """One image's detections: boxes (ymin, xmin, ymax, xmax) normalized, class indices (background
    removed), scores; best first."""

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class NmsOptions:
    score_threshold: float = 0.01
    iou_threshold: float = 0.6
    max_detections: int = 100
    mode: str = "fast"

    def __post_init__(self) -> None:
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError(f"NMS score threshold {self.score_threshold} is outside [0, 1]")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ConfigError(f"NMS IoU threshold {self.iou_threshold} is outside (0, 1]")
        if not 1 <= self.max_detections <= 10_000:
            raise ConfigError(f"max detections {self.max_detections} is outside 1..10000")
        if self.mode not in NMS_MODES:
            raise ConfigError(f"NMS mode {self.mode!r} is not one of {', '.join(NMS_MODES)}")


@dataclass(frozen=True)
class DetectionHead:
    """How a detector's raw heads become detections: anchors, box coder scales, label scheme, NMS."""

    anchors: AnchorSpec
    box_scales: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
    labels: str = "coco90"
    nms: NmsOptions = field(default_factory=NmsOptions)
    postprocess: str = "host"
    # The real classes scored (background aside): what the label scheme maps to category ids.
    classes: int = 90

    def __post_init__(self) -> None:
        if self.postprocess not in POSTPROCESS:
            raise ConfigError(f"post-processing {self.postprocess!r} is not one of {', '.join(POSTPROCESS)}")

    def to_dict(self) -> dict[str, Any]:
        return {"anchors": self.anchors.to_dict(), "box_scales": list(self.box_scales), "labels": self.labels,
                "nms": asdict(self.nms), "postprocess": self.postprocess, "classes": self.classes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectionHead:
        try:
            return cls(AnchorSpec.from_dict(data["anchors"]), tuple(float(s) for s in data["box_scales"]),  # type: ignore[arg-type]
                       str(data["labels"]), NmsOptions(**data["nms"]), str(data.get("postprocess", "host")),
                       int(data.get("classes", 90)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"the model's detection head record is incomplete ({exc.__class__.__name__}: {exc})") \
                from None

    @classmethod
    def of(cls, io: ModelIO) -> DetectionHead:
        if "detection" not in io.extra:
            raise ConfigError("the model records no detection head (anchors, box scales): not a detector's IO spec")
        return cls.from_dict(io.extra["detection"])

    def with_nms(self, **changes: Any) -> DetectionHead:
        return replace(self, nms=replace(self.nms, **changes))

    @cached_property
    def anchor_boxes(self) -> np.ndarray:
        return self.anchors.anchors()

    def category_ids(self) -> np.ndarray:
        """The category id of each class index the model predicts."""
        return category_ids(self.labels, self.classes)

    def detect(self, outputs: Outputs) -> list[Detections]:
        """Each image's detections from the raw heads of a batch (class logits, background slot removed), or
        from a graph's own post-processing outputs."""
        if self.postprocess == "graph":
            return graph_detections(outputs)
        if not isinstance(outputs, dict) or BOX_ENCODINGS not in outputs or CLASS_LOGITS not in outputs:
            raise DataError(f"a detector's outputs are {BOX_ENCODINGS} and {CLASS_LOGITS}, got "
                            f"{sorted(outputs) if isinstance(outputs, dict) else 'one array'}")
        encodings, logits = outputs[BOX_ENCODINGS], outputs[CLASS_LOGITS]
        if encodings.shape[1] != len(self.anchor_boxes) or logits.shape[1] != len(self.anchor_boxes):
            raise DataError(f"the heads score {encodings.shape[1]} anchors, the anchor generator makes "
                            f"{len(self.anchor_boxes)}")
        boxes = decode_boxes(encodings, self.anchor_boxes, self.box_scales)
        if self.nms.mode == "fast":
            # The sigmoid is monotonic: each anchor's best class is its largest logit, and only that one score
            # needs computing (not anchors x classes of them).
            classes = logits.argmax(-1)
            best = _sigmoid(np.take_along_axis(logits, classes[..., None], -1)[..., 0])
            return [_fast(b, c, s, self.nms) for b, c, s in zip(boxes, classes, best)]
        return [suppress(b, _sigmoid(s), self.nms) for b, s in zip(boxes, logits)]


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def graph_detections(outputs: Outputs) -> list[Detections]:
    """Each image's detections as a post-processing graph gives them (GRAPH_OUTPUTS: K rows, ``count`` used)."""
    if not isinstance(outputs, dict) or set(GRAPH_OUTPUTS) - set(outputs):
        raise DataError(f"a post-processed detector's outputs are {', '.join(GRAPH_OUTPUTS)}, got "
                        f"{sorted(outputs) if isinstance(outputs, dict) else 'one array'}")
    boxes, classes, scores, count = (outputs[name] for name in GRAPH_OUTPUTS)
    found = []
    for b, c, s, n in zip(boxes, classes, scores, count.reshape(len(boxes), -1)[:, 0]):
        k = int(min(max(n, 0), len(s)))
        found.append(Detections(b[:k].astype(np.float64), np.rint(c[:k]).astype(np.int64), s[:k].astype(np.float64)))
    return found


def decode_boxes(encodings: np.ndarray, anchors: np.ndarray, scales: tuple[float, ...]) -> np.ndarray:
    """(…, A, 4) encodings (ty, tx, th, tw) against (A, 4) anchors -> (…, A, 4) (ymin, xmin, ymax, xmax)."""
    e = encodings.astype(np.float64) / np.asarray(scales, np.float64)
    ya, xa, ha, wa = (anchors[:, i].astype(np.float64) for i in range(4))
    yc, xc = e[..., 0] * ha + ya, e[..., 1] * wa + xa
    h, w = np.exp(e[..., 2]) * ha, np.exp(e[..., 3]) * wa
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=-1)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (ymin, xmin, ymax, xmax) box with each of ``boxes``; 0 where either has no area."""
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    inter_h = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    inter_w = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = inter_h * inter_w
    union = area + areas - inter
    return np.where((area > 0) & (areas > 0) & (union > 0), inter / np.where(union > 0, union, 1.0), 0.0)


def count_matches(reference: Detections, candidate: Detections, min_iou: float) -> int:
    """How many of ``reference``'s detections ``candidate`` has too: same class, IoU >= ``min_iou``, each candidate
    detection used once (greedy, the reference's best first)."""
    used = np.zeros(len(candidate), bool)
    found = 0
    for i in np.argsort(-reference.scores, kind="stable"):
        same = np.flatnonzero(~used & (candidate.classes == reference.classes[i]))
        if len(same):
            iou = box_iou(reference.boxes[i], candidate.boxes[same])
            if iou.max() >= min_iou:
                used[same[int(iou.argmax())]] = True
                found += 1
    return found


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, limit: int) -> np.ndarray:
    """Indices kept by greedy NMS, best first (at most ``limit``); ties keep the lower index first."""
    order = np.argsort(-scores, kind="stable")
    kept: list[int] = []
    alive = np.ones(len(order), bool)
    ordered = boxes[order]
    for rank, index in enumerate(order):
        if not alive[rank]:
            continue
        kept.append(int(index))
        if len(kept) == limit:
            break
        alive[rank + 1:] &= box_iou(ordered[rank], ordered[rank + 1:]) <= iou_threshold
    return np.asarray(kept, np.int64)


def _fast(boxes: np.ndarray, classes: np.ndarray, best: np.ndarray, options: NmsOptions) -> Detections:
    """TFLite's fast NMS: every anchor's best class and score, one class-agnostic greedy NMS."""
    candidates = np.flatnonzero(best >= options.score_threshold)
    kept = candidates[greedy_nms(boxes[candidates], best[candidates], options.iou_threshold, options.max_detections)]
    return Detections(boxes[kept], classes[kept], best[kept])


def suppress(boxes: np.ndarray, scores: np.ndarray, options: NmsOptions) -> Detections:
    """One image's detections from its decoded boxes (A, 4) and class scores (A, classes)."""
    if options.mode == "fast":
        classes = scores.argmax(-1)
        return _fast(boxes, classes, scores[np.arange(len(scores)), classes], options)
    picked: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for c in range(scores.shape[1]):
        candidates = np.flatnonzero(scores[:, c] >= options.score_threshold)
        if not len(candidates):
            continue
        kept = candidates[greedy_nms(boxes[candidates], scores[candidates, c], options.iou_threshold,
                                     options.max_detections)]
        picked.append((kept, np.full(len(kept), c), scores[kept, c]))
    if not picked:
        return Detections(np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0))
    index, classes, best = (np.concatenate(parts) for parts in zip(*picked))
    top = np.argsort(-best, kind="stable")[:options.max_detections]
    return Detections(boxes[index[top]], classes[top], best[top])
