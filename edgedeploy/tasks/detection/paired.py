"""Two detectors on the same labeled images: the mAP drop with a paired bootstrap interval over images,
and the Wilcoxon test on per-image AP.

mAP is not a mean over images, so each resample is scored by pycocotools itself: ``COCOeval.evaluate`` runs
once per model (it matches every image's detections to its truth), and each resample re-runs
``COCOeval.accumulate`` over the resampled images' match tables (an image drawn twice counts twice), at
IoU .5:.95, all sizes, the last max-detections setting: the figure ``map`` reports. pycocotools is
pure-Python there, so the interval uses ``MAP_RESAMPLES`` resamples (the same seed, the same interval).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
from typing import Any

import numpy as np

from edgedeploy.core.stats import BOOTSTRAP_SEED, Interval, PairedComparison
from edgedeploy.tasks.base import Records
from edgedeploy.tasks.detection.metrics import coco_truth, load_results, rows_of

__all__ = ["MAP_RESAMPLES", "paired_map", "per_image_ap"]

MAP_RESAMPLES = 200


class _Matched:
    """One model's COCOeval after ``evaluate``, restricted to area "all" and the largest max-detections."""

    def __init__(self, records: Records):
        from pycocotools.cocoeval import COCOeval

        images = [(int(i), int(w), int(h)) for i, (w, h) in zip(records["image_id"], records["image_size"])]
        gt = coco_truth(images, rows_of(records, "truth"), crowd_column=True)
        results = [{"image_id": image_id, "bbox": row[:4].tolist(), "category_id": int(row[4]),
                    "score": float(row[5])}
                   for (image_id, _, _), rows in zip(images, rows_of(records, "detections")) for row in rows]
        with contextlib.redirect_stdout(io.StringIO()):
            dt = load_results(gt, results)
            self.eval = COCOeval(gt, dt, "bbox")
            params = self.eval.params
            # Only what ``map`` reports: area "all", the largest max-detections (a third of accumulate's work).
            params.areaRng, params.areaRngLbl, params.maxDets = params.areaRng[:1], ["all"], params.maxDets[-1:]
            self.eval.evaluate()
        self.image_ids = list(self.eval.params.imgIds)
        self.categories = len(self.eval.params.catIds)

    def map(self, picks: np.ndarray) -> float:
        """mAP (points) over the images at positions ``picks`` (repeats allowed)."""
        e = self.eval
        n = len(self.image_ids)
        # evalImgs is laid out [category][area][image]; one area is kept.
        e.evalImgs = [self._all[k * n + i] for k in range(self.categories) for i in picks]
        e._paramsEval.imgIds = e.params.imgIds = list(range(len(picks)))
        with contextlib.redirect_stdout(io.StringIO()):
            e.accumulate()
        precision = e.eval["precision"][:, :, :, 0, -1]
        valid = precision[precision > -1]
        return 100.0 * float(valid.mean()) if valid.size else 0.0

    @property
    def _all(self) -> list[Any]:
        if not hasattr(self, "_evaluated"):
            self._evaluated = list(self.eval.evalImgs)
        return self._evaluated


def per_image_ap(matched: _Matched) -> np.ndarray:
    """Each image's own mAP (points; 0 for an image without truth)."""
    return np.array([matched.map(np.array([i])) for i in range(len(matched.image_ids))])


def _key(records: Records) -> str:
    digest = hashlib.sha256()
    for name in _MATCHED_BY:
        digest.update(name.encode() + np.ascontiguousarray(records[name]).tobytes())
    return digest.hexdigest()


# What a model's matches depend on; a gate pairs every target with the same float records, so each set's bootstrap
# (per-resample mAP and per-image AP) is computed once per process.
_MATCHED_BY = ("image_id", "image_size", "truth", "truth_count", "detections", "detections_count")


@functools.lru_cache(maxsize=32)
def _bootstrap(key: str, records_ref: _Frozen, n: int, resamples: int, seed: int) -> tuple[float, np.ndarray, np.ndarray]:
    """(mAP over every image, mAP per resample, AP per image) of one model's records."""
    matched = _Matched(records_ref.records)
    picks = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    return matched.map(np.arange(n)), np.array([matched.map(p) for p in picks]), per_image_ap(matched)


class _Frozen:
    """Records carried through the cache by the key alone (hashed by it, compared by it)."""

    def __init__(self, key: str, records: Records):
        self.key, self.records = key, records

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Frozen) and other.key == self.key


def paired_map(reference: Records, candidate: Records, confidence: float, resamples: int = MAP_RESAMPLES,
               seed: int = BOOTSTRAP_SEED) -> PairedComparison:
    from scipy import stats

    n = len(reference["image_id"])
    # The same resamples for both models (one seed): the bootstrap is paired image by image.
    (ref_all, ref_maps, ref_images), (cand_all, cand_maps, cand_images) = (
        _bootstrap(key, _Frozen(key, records), n, resamples, seed)
        for records in (reference, candidate) for key in [_key(records)])
    drop = ref_all - cand_all
    drops = ref_maps - cand_maps
    alpha = (1 - confidence) / 2
    low, high = (float(np.quantile(drops, q)) for q in (alpha, 1 - alpha))
    diff = ref_images - cand_images
    lost, gained = int((diff > 0).sum()), int((diff < 0).sum())
    if lost + gained > 1:
        p_value = float(stats.wilcoxon(diff, zero_method="wilcox").pvalue)
        p_loss = float(stats.wilcoxon(diff, zero_method="wilcox", alternative="greater").pvalue)
    else:
        p_value = p_loss = 1.0
    return PairedComparison(n, Interval(round(drop, 4), round(low, 4), round(high, 4), confidence), lost, gained,
                            p_value, p_loss, test="Wilcoxon")
