"""Detections as pictures: boxes drawn on the image with their class name and score (``eval
--save-detections``), and the report's strips (ground truth | each model) for a few images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from edgedeploy.core.artifacts import atomic_path
from edgedeploy.core.io_spec import ModelIO, Outputs
from edgedeploy.data.datasets import LabeledImage
from edgedeploy.tasks.detection.data import Boxes
from edgedeploy.tasks.detection.labels import category_name
from edgedeploy.tasks.detection.postprocess import DetectionHead

__all__ = ["MIN_DRAWN_SCORE", "THUMBNAIL", "DetectionWriter", "draw_boxes", "report_pictures", "truth_rows"]

# Detections below this score are not drawn (mAP counts them; a picture of 100 boxes shows nothing).
MIN_DRAWN_SCORE = 0.3
THUMBNAIL = 320
# One colour per category (a fixed, well-spread palette: the same class has the same colour in every picture).
_COLOURS = np.array([[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
                     [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128],
                     [220, 190, 255], [170, 110, 40], [128, 0, 0], [170, 255, 195], [128, 128, 0]], np.uint8)


def draw_boxes(image: Image.Image, rows: np.ndarray, scored: bool = True) -> Image.Image:
    """``image`` with each row's box (x, y, w, h in the image's pixels, category id, score) and its label."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 250))
    for row in rows:
        x, y, w, h, category = row[:5]
        colour = tuple(int(c) for c in _COLOURS[int(category) % len(_COLOURS)])
        draw.rectangle([x, y, x + w, y + h], outline=colour, width=width)
        label = category_name(int(category)) + (f" {row[5]:.2f}" if scored else "")
        left, top, right, bottom = draw.textbbox((x, y), label)
        draw.rectangle([left, top - 1, right + 2, bottom + 1], fill=colour)
        draw.text((x + 1, y), label, fill=(0, 0, 0))
    return out


def _rows(head: DetectionHead, outputs: Outputs, items: list[LabeledImage]) -> list[np.ndarray]:
    from edgedeploy.tasks.detection.metrics import image_rows

    return image_rows(head, outputs, [item.image.size for item in items])


def truth_rows(truth: Boxes | None) -> np.ndarray:
    if truth is None:
        return np.zeros((0, 6))
    return np.column_stack([truth.boxes, truth.categories, np.ones(len(truth.categories))])


class DetectionWriter:
    """Writes each image with its detections drawn (score >= MIN_DRAWN_SCORE) as ``<stem>.jpg``."""

    writes = "detections"

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.head: DetectionHead | None = None
        self.written: list[Path] = []

    def bind(self, io: ModelIO) -> DetectionWriter:
        self.head = DetectionHead.of(io)
        return self

    def __call__(self, outputs: Outputs, items: list[LabeledImage]) -> None:
        assert self.head is not None, "bind the writer to the model's IO first"
        for rows, item in zip(_rows(self.head, outputs, items), items):
            path = self.out_dir / f"{item.path.stem}.jpg"
            with atomic_path(path) as tmp:
                draw_boxes(item.image, rows[rows[:, 5] >= MIN_DRAWN_SCORE]).save(tmp, format="JPEG", quality=90)
            self.written.append(path)


def report_pictures(images: list[LabeledImage], predictions: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """``out_dir/<stem>/{ground-truth,<model>}.png`` per image: the report's table (columns, and per image the
    files relative to ``out_dir``'s parent). ``predictions``: each model's (io, outputs on ``images``)."""
    columns = ["ground truth", *predictions]
    rows = []
    for i, item in enumerate(images):
        scale = min(1.0, THUMBNAIL / max(item.image.size))
        small = item.image.resize((max(1, round(item.image.size[0] * scale)), max(1, round(item.image.size[1] * scale))))
        pictures = {}
        if isinstance(item.label, Boxes):
            pictures["ground truth"] = draw_boxes(small, _scaled(truth_rows(item.label), scale), scored=False)
        for name, (io, outputs) in predictions.items():
            one = {k: v[i:i + 1] for k, v in outputs.items()}
            found = _rows(DetectionHead.of(io), one, [item])[0]
            pictures[name] = draw_boxes(small, _scaled(found[found[:, 5] >= MIN_DRAWN_SCORE], scale))
        files = []
        for column in columns:
            if column not in pictures:
                files.append(None)
                continue
            path = Path(out_dir) / item.path.stem / f"{column.replace(' ', '-')}.png"
            with atomic_path(path) as tmp:
                pictures[column].save(tmp, format="PNG")
            files.append(path.relative_to(Path(out_dir).parent).as_posix())
        rows.append({"image": item.path.name, "files": files})
    return {"columns": columns, "rows": rows,
            "note": f"The first images of the evaluation data: the ground truth, the float model (pytorch) and every "
                    f"target, boxes with score >= {MIN_DRAWN_SCORE} drawn with their class and score."}


def _scaled(rows: np.ndarray, scale: float) -> np.ndarray:
    out = rows.copy()
    out[:, :4] *= scale
    return out
