"""Detection data sets: COCO box annotations (an ``instances.json`` as the official release writes it) and
a folder of the images they name.

Layouts: ``DIR/instances.json`` + ``DIR/images/``, or any COCO json given as ``--annotations FILE`` with
the images in ``DIR`` (or ``DIR/images/``); a flat folder of images is read unlabeled (detections and
agreement only). Everything is checked when the set is opened: the json's structure, every image id's
file, every file's id, every box inside its image, every annotation's category among the json's own;
one line names the file and the field. Boxes stay in COCO's form: (x, y, width, height) in pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import DataError
from edgedeploy.core.jsonfile import parse_json
from edgedeploy.core.paths import read_bytes
from edgedeploy.data.datasets import IMAGE_SUFFIXES, ImageFolder, ImageSet

__all__ = ["ANNOTATIONS_FILE", "IMAGES_DIR", "MAX_ANNOTATIONS_BYTES", "Boxes", "DetectionSet", "layout_of"]

ANNOTATIONS_FILE, IMAGES_DIR = "instances.json", "images"
# COCO's full val2017 instances file is 25 MB, train2017's 450 MB: larger is not an annotation file.
MAX_ANNOTATIONS_BYTES = 1 << 30
# Official boxes may end a rounding error past the image's edge.
_EDGE_SLACK = 1.0


@dataclass(frozen=True)
class Boxes:
    """One image's ground truth: boxes (x, y, w, h) in pixels, their COCO category ids, crowd flags and
    areas (COCO's size buckets use the annotation's area, the segment's, not the box's)."""

    image_id: int
    width: int
    height: int
    boxes: np.ndarray
    categories: np.ndarray
    iscrowd: np.ndarray
    area: np.ndarray


def layout_of(path: Path) -> str | None:
    """"coco" for ``instances.json`` + ``images/``, else None."""
    return "coco" if (path / ANNOTATIONS_FILE).is_file() and (path / IMAGES_DIR).is_dir() else None


def _field(record: Any, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(record, dict) or name not in record:
        raise DataError(f"{where}: no {name!r} field")
    value = record[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DataError(f"{where}: {name!r} is {type(value).__name__}, not {getattr(kind, '__name__', kind)}")
    return value


def read_annotations(path: Path) -> dict[str, Any]:
    """The COCO json at ``path``, its structure checked (DataError naming the file and the field)."""
    data = read_bytes(path, "annotations file", MAX_ANNOTATIONS_BYTES)
    try:
        document = parse_json(data)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DataError(f"{path}: not a COCO annotations file ({exc.__class__.__name__}: not readable JSON)") from exc
    for key in ("images", "annotations", "categories"):
        if not isinstance(document, dict) or not isinstance(document.get(key), list):
            raise DataError(f"{path}: not a COCO annotations file (no {key!r} list)")
    return document


@dataclass
class DetectionSet(ImageSet):
    """Images with their COCO boxes; labels are image ids, read into ``Boxes`` while iterating."""

    categories: dict[int, str] = field(default_factory=dict)
    _truth: dict[int, Boxes] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: str | Path, annotations: str | Path | None = None) -> DetectionSet:
        path = Path(path)
        if not path.exists():
            raise DataError(f"{path}: data folder not found")
        if annotations is None and layout_of(path) is None:
            folder = ImageFolder.open(path)
            if folder.files[0][1] is not None:
                raise DataError(f"{path}: not a detection set ({ANNOTATIONS_FILE} + {IMAGES_DIR}/, or --annotations)")
            return cls(folder.root, folder.files, "none (flat folder)", list(folder.skipped))
        json_path = Path(annotations) if annotations is not None else path / ANNOTATIONS_FILE
        images_dir = path / IMAGES_DIR if (path / IMAGES_DIR).is_dir() else path
        document = read_annotations(json_path)
        categories = _categories(document["categories"], json_path)
        truth, names = _images(document["images"], json_path)
        _add_boxes(document["annotations"], truth, categories, json_path)
        files = _match_files(images_dir, names, json_path)
        if not files:
            raise DataError(f"{json_path}: lists no images")
        return cls(path, files, f"COCO annotations ({json_path.name})", [], categories,
                   {image_id: _as_arrays(image_id, entry) for image_id, entry in truth.items()})

    def load_label(self, reference: Any) -> Boxes | None:
        return None if reference is None else self._truth[reference]

    def _label_text(self, reference: Any) -> str:
        # The boxes are part of the set's identity (the json may change under the same image ids).
        if reference is None:
            return "none"
        t = self._truth[reference]
        return f"{reference}:{t.width}x{t.height}:" + ",".join(
            f"{c}:{i}:{b[0]:.2f}/{b[1]:.2f}/{b[2]:.2f}/{b[3]:.2f}" for b, c, i in zip(t.boxes, t.categories, t.iscrowd))


def _categories(entries: list[Any], path: Path) -> dict[int, str]:
    categories: dict[int, str] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: categories[{i}]"
        category_id = _field(entry, "id", int, where)
        categories[category_id] = str(_field(entry, "name", str, where))
    if not categories:
        raise DataError(f"{path}: lists no categories")
    return categories


def _images(entries: list[Any], path: Path) -> tuple[dict[int, dict[str, Any]], dict[str, int]]:
    truth: dict[int, dict[str, Any]] = {}
    names: dict[str, int] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: images[{i}]"
        image_id = _field(entry, "id", int, where)
        name = _field(entry, "file_name", str, where)
        width, height = _field(entry, "width", int, where), _field(entry, "height", int, where)
        if width < 1 or height < 1:
            raise DataError(f"{where}: size {width}x{height} is not an image's")
        if image_id in truth or name in names:
            raise DataError(f"{where}: image id {image_id} or file {name!r} listed twice")
        if Path(name).name != name:
            raise DataError(f"{where}: file_name {name!r} is a path, not a file name")
        truth[image_id] = {"width": width, "height": height, "boxes": [], "categories": [], "iscrowd": [], "area": []}
        names[name] = image_id
    return truth, names


def _add_boxes(entries: list[Any], truth: dict[int, dict[str, Any]], categories: dict[int, str], path: Path) -> None:
    for i, entry in enumerate(entries):
        where = f"{path}: annotations[{i}]"
        image_id = _field(entry, "image_id", int, where)
        if image_id not in truth:
            raise DataError(f"{where}: image_id {image_id} is not among the json's images")
        category = _field(entry, "category_id", int, where)
        if category not in categories:
            raise DataError(f"{where}: category_id {category} is not among the json's categories")
        box = _field(entry, "bbox", list, where)
        if len(box) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                    for v in box):
            raise DataError(f"{where}: bbox {box!r} is not four numbers (x, y, width, height)")
        image = truth[image_id]
        x, y, w, h = (float(v) for v in box)
        if w < 0 or h < 0 or x < -_EDGE_SLACK or y < -_EDGE_SLACK or x + w > image["width"] + _EDGE_SLACK or \
                y + h > image["height"] + _EDGE_SLACK:
            raise DataError(f"{where}: bbox {box} lies outside its image ({image['width']}x{image['height']})")
        crowd = entry.get("iscrowd", 0)
        area = entry.get("area", w * h)
        if crowd not in (0, 1) or not isinstance(area, (int, float)) or isinstance(area, bool) or area < 0:
            raise DataError(f"{where}: iscrowd must be 0 or 1 and area a non-negative number")
        image["boxes"].append((x, y, w, h))
        image["categories"].append(category)
        image["iscrowd"].append(int(crowd))
        image["area"].append(float(area))


def _match_files(images_dir: Path, names: dict[str, int], path: Path) -> list[tuple[Path, Any]]:
    """(file, image id) in the json's order; an id without its file or an image file without an id is an error."""
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: images folder not found")
    present = {f.name for f in images_dir.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES}
    for name, image_id in names.items():
        if name not in present:
            raise DataError(f"{path}: image id {image_id} names {name}, which is not in {images_dir}")
    extra = sorted(present - set(names))
    if extra:
        raise DataError(f"{images_dir / extra[0]}: an image the annotations do not list ({len(extra)} such files; "
                        f"{path.name} names the images of the set)")
    return [(images_dir / name, image_id) for name, image_id in names.items()]


def _as_arrays(image_id: int, entry: dict[str, Any]) -> Boxes:
    return Boxes(image_id, entry["width"], entry["height"], np.asarray(entry["boxes"], np.float64).reshape(-1, 4),
                 np.asarray(entry["categories"], np.int64), np.asarray(entry["iscrowd"], np.int64),
                 np.asarray(entry["area"], np.float64))
