"""Object detection: COCO box annotations, mAP by pycocotools' COCOeval, agreement = the float model's
confident detections found again (same class, IoU >= 0.5).

A detector's outputs are its raw heads (per-anchor box encodings and class logits); the task decodes and
suppresses them (``postprocess``) with what the model's IO spec records (anchors, box scales, label scheme,
NMS options), so PyTorch and every artifact are read the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgedeploy.core.io_spec import ModelIO, OutputSpec, Preprocessing
from edgedeploy.core.stats import PairedComparison
from edgedeploy.data.datasets import ImageSet, LabeledImage
from edgedeploy.tasks.base import LAYOUT_SPECIFIC, Accumulator, DataFormat, Records, Task
from edgedeploy.tasks.detection.data import ANNOTATIONS_FILE, IMAGES_DIR, DetectionSet, layout_of
from edgedeploy.tasks.detection.metrics import DetectionAccumulator
from edgedeploy.tasks.detection.pictures import DetectionWriter, report_pictures
from edgedeploy.tasks.detection.postprocess import BOX_ENCODINGS, CLASS_LOGITS, DetectionHead

__all__ = ["Detection"]


class Detection(Task):
    name = "detection"
    description = "object detection: COCO mAP on images with box annotations, agreement = float's detections found"
    metric, metric_label = "map", "mAP"
    agreement_label = "detection agreement"
    output_layout = "tensor"
    data_format_fields = ("annotations",)
    label_records = ("truth", "truth_count")
    # Images the report shows (ground truth | every model, boxes drawn).
    report_images: ClassVar[int] = 4

    def preprocessing(self, resolution: int, mean: tuple[float, ...], std: tuple[float, ...],
                      raw_pixels: bool = False) -> Preprocessing:
        """The whole image resized to the input, as SSD is trained and Google's detectors are fed."""
        spec = Preprocessing.for_resolution(resolution, mean, std, raw_pixels)
        return Preprocessing(resize=resolution, crop=resolution, mean=spec.mean, std=spec.std,
                             raw_pixels=raw_pixels, resize_mode="stretch")

    def output_specs(self, config: Any) -> tuple[OutputSpec, ...]:
        """Per-anchor box encodings (N, A, 4) and class logits (N, A, 1 + classes), background first."""
        return (OutputSpec(BOX_ENCODINGS, 4, layout="tensor"),
                OutputSpec(CLASS_LOGITS, config.num_classes, background_class=True, layout="tensor"))

    def io_extra(self, config: Any) -> dict[str, Any]:
        """The family's detection head (anchors, box scales, labels, NMS), checked and recorded in full."""
        return {"detection": DetectionHead.from_dict({**config.detection_parameters(),
                                                      "classes": config.num_classes}).to_dict()}

    def layout_match(self, path: Path) -> int:
        return LAYOUT_SPECIFIC if layout_of(path) is not None else 0

    def describe_layout(self) -> str:
        return f"COCO {ANNOTATIONS_FILE} + {IMAGES_DIR}/ (or --annotations FILE), or a flat folder of images"

    def _open(self, path: Path, options: DataFormat) -> ImageSet:
        return DetectionSet.open(path, options.annotations)

    def accumulator(self) -> Accumulator:
        return DetectionAccumulator()

    def reorder(self, records: Records, order: np.ndarray) -> Records:
        """Per-image rows reordered; a variable-length record's rows (``name`` with ``name_count``) move with their
        image."""
        from edgedeploy.tasks.detection.metrics import rows_of

        out = {}
        for name, values in records.items():
            if f"{name}_count" in records:
                rows = rows_of(records, name)
                out[name] = np.concatenate([rows[i] for i in order]).reshape(-1, values.shape[1]) if len(order) \
                    else values[:0]
            else:
                out[name] = values[order]
        return out

    def prediction_writer(self, out_dir: Path) -> Any:
        return DetectionWriter(out_dir)

    def host_step(self, io: ModelIO) -> Any:
        """Reading the raw heads, decoding the boxes and NMS, where the graph does not do them itself."""
        head = DetectionHead.of(io)
        return None if head.postprocess == "graph" else (lambda raw: head.detect(io.read(raw)))

    def picture_outputs(self, io: ModelIO, outputs: Any) -> Any:
        return io, outputs

    def pictures(self, images: list[LabeledImage], predictions: dict[str, Any], out_dir: Path) -> dict[str, Any] | None:
        return report_pictures(images, predictions, out_dir)

    def paired(self, reference: Records, candidate: Records, confidence: float) -> PairedComparison | None:
        from edgedeploy.tasks.detection.paired import paired_map

        if "labeled" not in reference or not len(reference["labeled"]) or not reference["labeled"].all():
            return None
        return paired_map(reference, candidate, confidence)
