"""Class maps as pictures: PASCAL VOC's colour palette, predicted masks written as indexed PNGs, and
the report's strips (input | ground truth | each model) for a few images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgedeploy.core.artifacts import atomic_path
from edgedeploy.data.datasets import LabeledImage
from edgedeploy.tasks.segmentation.data import Mask
from edgedeploy.tasks.segmentation.metrics import predicted_classes

__all__ = ["voc_palette", "class_map_image", "MaskWriter", "report_pictures", "THUMBNAIL"]

# The report's pictures: each at most this many pixels on its longer side.
THUMBNAIL = 256


def voc_palette(colours: int = 256) -> np.ndarray:
    """(colours, 3) uint8: VOC's palette (class c's bits spread over the high bits of R, G and B)."""
    palette = np.zeros((colours, 3), np.uint8)
    for c in range(colours):
        value, shift = c, 7
        while value:
            for channel in range(3):
                palette[c, channel] |= ((value >> channel) & 1) << shift
            value >>= 3
            shift -= 1
    return palette


def class_map_image(classes: np.ndarray) -> Image.Image:
    """An indexed PNG image of a class map (values 0-255) in VOC's colours, as VOC ships its masks."""
    image = Image.fromarray(classes.astype(np.uint8), mode="P")
    image.putpalette(voc_palette().reshape(-1).tolist())
    return image


class MaskWriter:
    """Writes each image's predicted class map, at the image's own size, as ``<stem>.png`` (eval --save-masks)."""

    writes = "masks"

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.written: list[Path] = []

    def __call__(self, scores: np.ndarray, items: list[LabeledImage]) -> None:
        for image_scores, item in zip(scores, items):
            width, height = item.image.size
            path = self.out_dir / f"{item.path.stem}.png"
            with atomic_path(path) as tmp:
                class_map_image(predicted_classes(image_scores, (height, width))).save(tmp, format="PNG")
            self.written.append(path)


def _thumbnail(image: Image.Image, nearest: bool) -> Image.Image:
    scale = THUMBNAIL / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale)))
    return image.resize(size, Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR)


def report_pictures(images: list[LabeledImage], predictions: dict[str, np.ndarray], out_dir: Path
                    ) -> dict[str, Any]:
    """``out_dir/<stem>/{input,ground-truth,<model>}.png`` per image; the report's table of them
    (columns, and per image the files relative to ``out_dir``'s parent)."""
    columns = ["input", "ground truth", *predictions]
    rows = []
    for i, item in enumerate(images):
        width, height = item.image.size
        folder = Path(out_dir) / item.path.stem
        pictures = {"input": _thumbnail(item.image, nearest=False)}
        mask = item.label
        if isinstance(mask, Mask):
            pictures["ground truth"] = _thumbnail(class_map_image(mask.labels), nearest=True)
        for name, scores in predictions.items():
            pictures[name] = _thumbnail(class_map_image(predicted_classes(scores[i], (height, width))), nearest=True)
        files = []
        for column in columns:
            if column not in pictures:
                files.append(None)
                continue
            path = folder / f"{column.replace(' ', '-')}.png"
            with atomic_path(path) as tmp:
                pictures[column].convert("RGB").save(tmp, format="PNG")
            files.append(path.relative_to(Path(out_dir).parent).as_posix())
        rows.append({"image": item.path.name, "files": files})
    return {"columns": columns, "rows": rows}
