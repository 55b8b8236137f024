"""Detection metrics: COCO's box AP computed by pycocotools' ``COCOeval`` over the whole set, from
per-image records that shards concatenate exactly.

Per image the accumulator records its detections and its ground truth as variable-length rows (flat arrays
with a count per image: a shard's records follow another's and the counts still say which rows are whose);
mAP is never a sum, so it is computed from the merged records, by COCOeval, as the official evaluation does.
Against a reference (the float model): the reference's detections with score >= ``AGREEMENT_SCORE`` are taken
as ground truth (``map_vs_float``: the candidate's mAP against them), agreement is the share of those
detections the candidate finds (same class, IoU >= 0.5), and every raw output's differences are kept.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import replace
from typing import Any

import numpy as np

from edgedeploy.core.errors import DataError
from edgedeploy.core.io_spec import ModelIO, Outputs
from edgedeploy.data.datasets import LabeledImage
from edgedeploy.tasks.base import Accumulator, EvalResult, Records
from edgedeploy.tasks.detection.data import Boxes
from edgedeploy.tasks.detection.postprocess import BOX_ENCODINGS, CLASS_LOGITS, DetectionHead, Detections, count_matches

__all__ = ["AGREEMENT_IOU", "AGREEMENT_SCORE", "DetectionAccumulator", "coco_metrics", "coco_truth", "image_rows",
           "load_results", "rows_of"]

# Reference detections this confident are the ones agreement counts (and map_vs_float takes as truth).
AGREEMENT_SCORE, AGREEMENT_IOU = 0.5, 0.5
# Record columns: a detection (x, y, w, h, category id, score), a ground-truth box (x, y, w, h, category id,
# iscrowd, area); boxes in the image's pixels, as COCO's json has them.
_DET_COLUMNS, _GT_COLUMNS = 6, 7
_SIZES = ("small", "medium", "large")


def _pixels(found: Detections, width: int, height: int, categories: np.ndarray) -> np.ndarray:
    """One image's detections as record rows, boxes clipped to the image (the TF OD API clips to its window)."""
    b = np.clip(found.boxes, 0.0, 1.0)
    x, y = b[:, 1] * width, b[:, 0] * height
    w, h = (b[:, 3] - b[:, 1]) * width, (b[:, 2] - b[:, 0]) * height
    return np.stack([x, y, w, h, categories[found.classes].astype(np.float64), found.scores], axis=1)


def image_rows(head: DetectionHead, outputs: Outputs, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Each image's detections as record rows (x, y, w, h in its pixels, category id, score); ``sizes``: the
    images' (width, height)."""
    categories = head.category_ids()
    return [_pixels(found, w, h, categories) for found, (w, h) in zip(head.detect(outputs), sizes)]


def _truth_rows(truth: Boxes | None) -> np.ndarray:
    if truth is None:
        return np.zeros((0, _GT_COLUMNS))
    return np.column_stack([truth.boxes, truth.categories, truth.iscrowd, truth.area]).astype(np.float64)


def rows_of(records: Records, name: str) -> list[np.ndarray]:
    """Each image's rows of a variable-length record (``name`` flat, ``name_count`` per image)."""
    counts = records[f"{name}_count"]
    return np.split(records[name], np.cumsum(counts)[:-1]) if len(counts) else []


def _matched(reference: np.ndarray, candidate: np.ndarray) -> int:
    """How many confident reference detections (record rows) the candidate finds: same category, IoU >= 0.5."""
    def detections(rows: np.ndarray) -> Detections:
        boxes = np.stack([rows[:, 1], rows[:, 0], rows[:, 1] + rows[:, 3], rows[:, 0] + rows[:, 2]], axis=1)
        return Detections(boxes, rows[:, 4].astype(np.int64), rows[:, 5])

    return count_matches(detections(reference[reference[:, 5] >= AGREEMENT_SCORE]), detections(candidate),
                         AGREEMENT_IOU)


def coco_truth(images: list[tuple[int, int, int]], truth: list[np.ndarray], crowd_column: bool) -> Any:
    from pycocotools.coco import COCO

    annotations = []
    for (image_id, _, _), rows in zip(images, truth):
        for row in rows:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "bbox": row[:4].tolist(),
                                "category_id": int(row[4]), "iscrowd": int(row[5]) if crowd_column else 0,
                                "area": float(row[6]) if crowd_column else float(row[2] * row[3])})
    categories = sorted({a["category_id"] for a in annotations})
    gt = COCO()
    gt.dataset = {"info": {}, "images": [{"id": i, "width": w, "height": h} for i, w, h in images],
                  "annotations": annotations, "categories": [{"id": c} for c in categories]}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress; --json owns stdout
        gt.createIndex()
    return gt


def coco_metrics(images: list[tuple[int, int, int]], truth: list[np.ndarray], detections: list[np.ndarray],
                 crowd_column: bool = True, per_class: bool = True) -> dict[str, Any]:
    """COCOeval bbox figures (points, 0-100): mAP@[.5:.95], AP50, AP75, AP per size and per category."""
    from pycocotools.cocoeval import COCOeval

    gt = coco_truth(images, truth, crowd_column)
    if not gt.dataset["annotations"]:
        return {"map": None}
    results = [{"image_id": image_id, "bbox": row[:4].tolist(), "category_id": int(row[4]), "score": float(row[5])}
               for (image_id, _, _), rows in zip(images, detections) for row in rows]
    with contextlib.redirect_stdout(io.StringIO()):
        dt = load_results(gt, results)
        evaluation = COCOeval(gt, dt, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    stats = [None if s < 0 else round(100.0 * float(s), 4) for s in evaluation.stats]
    figures: dict[str, Any] = {"map": stats[0], "ap50": stats[1], "ap75": stats[2],
                               **{f"ap_{size}": stats[3 + i] for i, size in enumerate(_SIZES)}}
    if per_class:
        # precision: [iou, recall, category, area, max detections]; -1 where a category has no truth.
        precision = evaluation.eval["precision"][:, :, :, 0, -1]
        figures["class_ap"] = {str(c): round(100.0 * float(p[p > -1].mean()), 4)
                               for c, p in zip(evaluation.params.catIds, np.moveaxis(precision, 2, 0)) if (p > -1).any()}
    return figures


def load_results(gt: Any, results: list[dict[str, Any]]) -> Any:
    """Detections as pycocotools' result set (``loadRes`` cannot take an empty list)."""
    from pycocotools.coco import COCO

    if results:
        return gt.loadRes(results)
    dt = COCO()
    dt.dataset = {"images": gt.dataset["images"], "annotations": [], "categories": gt.dataset["categories"]}
    dt.createIndex()
    return dt


class DetectionAccumulator(Accumulator):
    """Per-image detections and ground truth; COCO mAP from the records; agreement with a reference's
    confident detections and each raw output's differences."""

    def __init__(self, head: DetectionHead | None = None) -> None:
        super().__init__()
        self.head = head
        self._sizes: list[tuple[int, int]] = []

    def bind(self, io: ModelIO) -> DetectionAccumulator:
        self.head = DetectionHead.of(io)
        return self

    def update(self, scores: Outputs, items: list[LabeledImage], reference: Outputs | None = None,
               probabilities: tuple[bool, bool] = (False, False)) -> None:
        # Boxes are scaled to each image's own size (labels give it; an unlabeled image's decoded size does).
        self._sizes = [(item.label.width, item.label.height) if isinstance(item.label, Boxes) else item.image.size
                       for item in items]
        super().update(scores, items, reference, probabilities)  # type: ignore[arg-type]

    def _detections(self, outputs: Outputs) -> list[np.ndarray]:
        if self.head is None:
            raise DataError("detections need the model's detection head (its IO spec's anchors and NMS options)")
        return image_rows(self.head, outputs, self._sizes)

    def _compare(self, scores: Outputs, reference: Outputs) -> None:  # type: ignore[override]
        if not isinstance(scores, dict) or not isinstance(reference, dict):
            raise DataError("model and reference outputs differ: a detector's are its named heads")
        assert self.head is not None
        reference_head = self.head
        if set(scores) != set(reference):
            # A graph that post-processes itself against the raw heads it was made from: boxes are compared, the
            # raw outputs cannot be.
            if self.head.postprocess != "graph" or {BOX_ENCODINGS, CLASS_LOGITS} - set(reference):
                raise DataError(f"model and reference outputs differ: {sorted(scores)} vs {sorted(reference)}")
            reference_head = replace(self.head, postprocess="host")
        n = len(self._sizes)
        for name in sorted(set(scores) & set(reference)):
            if scores[name].shape != reference[name].shape:
                raise DataError(f"output {name}: model and reference shapes differ: {scores[name].shape[1:]} vs "
                                f"{reference[name].shape[1:]}")
            diff = np.abs(scores[name].astype(np.float64) - reference[name]).reshape(n, -1)
            self.max_abs_diff = max(self.max_abs_diff, float(diff.max()))
            self.abs_diff_sum += float(diff.sum())
            self.diff_count += diff.size
            self._record(**{f"max_abs_diff.{name}": diff.max(1), f"sum_abs_diff.{name}": diff.sum(1),
                            f"values.{name}": np.full(n, diff.shape[1], np.int64)})
        mine, theirs = self._detections(scores), image_rows(reference_head, reference, self._sizes)
        agree = np.array([_matched(r, c) for r, c in zip(theirs, mine)], np.int64)
        positions = np.array([int((r[:, 5] >= AGREEMENT_SCORE).sum()) for r in theirs], np.int64)
        self.agree += int(agree.sum())
        self.compared += int(positions.sum())
        self._record(agree=agree, positions=positions, reference=_flat(theirs, _DET_COLUMNS),
                     reference_count=np.array([len(r) for r in theirs], np.int64))

    def _update(self, scores: Outputs, labels: list[Any], probabilities: tuple[bool, bool],  # type: ignore[override]
                reference: Outputs | None) -> None:
        found = self._detections(scores)
        truth = [_truth_rows(label) for label in labels]
        known = self.head.category_ids() if self.head else None
        for label, rows in zip(labels, truth):
            unknown = sorted(set(rows[:, 4].astype(int).tolist()) - set(known.tolist())) if known is not None else []
            if unknown:
                raise DataError(f"image id {label.image_id}: category ids {unknown} are unknown to the model (its "
                                f"classes are COCO's {self.head.labels} ids)")
        self._record(image_id=np.array([label.image_id if label is not None else -1 for label in labels], np.int64),
                     image_size=np.array(self._sizes, np.int64).reshape(-1, 2),
                     labeled=np.array([label is not None for label in labels], bool),
                     detections=_flat(found, _DET_COLUMNS), detections_count=np.array([len(f) for f in found], np.int64),
                     truth=_flat(truth, _GT_COLUMNS), truth_count=np.array([len(t) for t in truth], np.int64))

    def _merge(self, other: Accumulator) -> None:
        """Nothing beyond the records: every figure is computed from them."""

    def result(self, skipped: int, seconds: float, with_reference: bool) -> EvalResult:
        res = super().result(skipped, seconds, with_reference)
        if with_reference and self.n and not self.compared:
            # The reference found nothing confident on these images: nothing to disagree with.
            res.agreement = 100.0
        return res

    def metrics(self, with_reference: bool) -> dict[str, Any]:
        records = self.records() if self._records else {}
        empty: dict[str, Any] = {"map": None, "ap50": None, "ap75": None, "map_vs_float": None, "output_diffs": {}}
        if not records or not records["labeled"].any() and not with_reference:
            return empty
        images = [(int(i), int(w), int(h)) for i, (w, h) in zip(records["image_id"], records["image_size"])]
        figures = dict(empty)
        if records["labeled"].all():
            figures.update(coco_metrics(images, rows_of(records, "truth"), rows_of(records, "detections")))
        if with_reference and "reference" in records:
            # Ids by position: unlabeled images have none of their own.
            positions = [(k, w, h) for k, (_, w, h) in enumerate(images)]
            confident = [r[r[:, 5] >= AGREEMENT_SCORE] for r in rows_of(records, "reference")]
            figures["map_vs_float"] = coco_metrics(positions, confident, rows_of(records, "detections"),
                                                   crowd_column=False, per_class=False)["map"]
            outputs = [name.split(".", 1)[1] for name in records if name.startswith("max_abs_diff.")]
            figures["output_diffs"] = {name: {
                "max_abs_diff": float(records[f"max_abs_diff.{name}"].max()),
                "mean_abs_diff": float(records[f"sum_abs_diff.{name}"].sum() / max(records[f"values.{name}"].sum(), 1))}
                for name in outputs}
        return figures


def _flat(rows: list[Any], columns: int) -> np.ndarray:
    arrays = [r if isinstance(r, np.ndarray) else np.zeros((0, columns)) for r in rows]
    return np.concatenate(arrays).reshape(-1, columns) if arrays else np.zeros((0, columns))
