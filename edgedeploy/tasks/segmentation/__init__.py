"""Semantic segmentation: images with masks of class indices, mIoU from a confusion summed over the set,
pixel agreement with the float model, masks and pictures of the predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgedeploy.core.io_spec import Preprocessing
from edgedeploy.core.stats import PairedComparison
from edgedeploy.data.datasets import ImageSet, LabeledImage
from edgedeploy.tasks.base import LAYOUT_SPECIFIC, Accumulator, DataFormat, Records, Task
from edgedeploy.tasks.segmentation.data import SegmentationSet, layout_of
from edgedeploy.tasks.segmentation.metrics import SegmentationAccumulator, paired_miou
from edgedeploy.tasks.segmentation.pictures import MaskWriter, report_pictures

__all__ = ["Segmentation"]


class Segmentation(Task):
    name = "segmentation"
    description = "semantic segmentation: mIoU on images with masks, agreement = same class per pixel"
    metric, metric_label = "miou", "mIoU"
    agreement_label = "pixel agreement"
    output_layout = "NCHW"
    data_format_fields = ("ignore_index", "mask_format")
    label_records = ("labeled",)
    # Images the report shows (input | ground truth | every model).
    report_images: ClassVar[int] = 4

    def preprocessing(self, resolution: int, mean: tuple[float, ...], std: tuple[float, ...],
                      raw_pixels: bool = False) -> Preprocessing:
        """The whole image resized to the input (every pixel is scored; nothing is cropped away)."""
        spec = Preprocessing.for_resolution(resolution, mean, std, raw_pixels)
        return Preprocessing(resize=resolution, crop=resolution, mean=spec.mean, std=spec.std,
                             raw_pixels=raw_pixels, resize_mode="stretch")

    def layout_match(self, path: Path) -> int:
        return LAYOUT_SPECIFIC if layout_of(path) is not None else 0

    def describe_layout(self) -> str:
        return "images/ + masks/ with the same stems, PASCAL VOC's JPEGImages/ + SegmentationClass/, " \
               "or a flat folder of images"

    def _open(self, path: Path, options: DataFormat) -> ImageSet:
        return SegmentationSet.open(path, options.ignore_index, options.mask_format)

    def accumulator(self) -> Accumulator:
        return SegmentationAccumulator()

    def paired(self, reference: Records, candidate: Records, confidence: float) -> PairedComparison | None:
        if "labeled" not in reference or not len(reference["labeled"]) or (reference["labeled"].sum(1) == 0).any():
            return None
        return paired_miou(reference, candidate, confidence)

    def pictures(self, images: list[LabeledImage], predictions: dict[str, np.ndarray],
                 out_dir: Path) -> dict[str, Any] | None:
        return report_pictures(images, predictions, out_dir)

    def prediction_writer(self, out_dir: Path) -> Any:
        return MaskWriter(out_dir)
