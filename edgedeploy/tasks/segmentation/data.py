"""Segmentation data sets: images paired with masks of class indices, in three layouts.

- ``images/`` + ``masks/``: the same stems (the shared VOC samples, and any label-ID set laid out so);
- PASCAL VOC: ``JPEGImages/``, ``SegmentationClass/`` and ``ImageSets/Segmentation/<split>.txt``
  (``--data`` is the VOC folder, read with its ``val`` split, or a split file itself);
- a flat folder of images: unlabeled (predictions and agreement only).

A mask is an indexed PNG whose values are class indices (VOC's ``SegmentationClass``: the palette only
colours them) or a grayscale image of label IDs (Cityscapes ``*_labelTrainIds``, ADE20K-style); the
ignore index (VOC: 255) marks pixels not scored. The pairing, every mask's size and its format are
checked when the set is opened (headers only); class values are checked while it is scored, against
the model's class count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgedeploy.core.errors import ConfigError, DataError
from edgedeploy.core.paths import read_text
from edgedeploy.data.datasets import IMAGE_SUFFIXES, ImageFolder, ImageSet
from edgedeploy.data.preprocess import IMAGE_DECODE_ERRORS

__all__ = ["Mask", "SegmentationSet", "MASK_FORMATS", "DEFAULT_IGNORE_INDEX", "layout_of"]

DEFAULT_IGNORE_INDEX = 255
MASK_FORMATS = ("palette", "label-ids")
_PALETTE_MODES, _ID_MODES = ("P",), ("L", "I", "I;16", "I;16B", "I;16L")
VOC_SPLIT = "val"


@dataclass(frozen=True)
class Mask:
    """A decoded mask: class index per pixel (int64), and the value that means "not scored"."""

    path: Path
    labels: np.ndarray
    ignore_index: int


def _voc_root(path: Path) -> tuple[Path, Path] | None:
    """(VOC folder, split file) for a VOC folder (its val split) or a split file inside one."""
    if path.is_file() and path.suffix == ".txt" and path.parent.name == "Segmentation":
        root = path.parent.parent.parent
        return (root, path) if (root / "JPEGImages").is_dir() else None
    if (path / "JPEGImages").is_dir() and (path / "SegmentationClass").is_dir():
        return path, path / "ImageSets" / "Segmentation" / f"{VOC_SPLIT}.txt"
    return None


def layout_of(path: Path) -> str | None:
    """"voc", "images+masks", or None (not a segmentation layout)."""
    if _voc_root(path) is not None:
        return "voc"
    if path.is_dir() and (path / "images").is_dir() and (path / "masks").is_dir():
        return "images+masks"
    return None


def _header(path: Path) -> tuple[tuple[int, int], str]:
    """(size, mode) from the file's header, without decoding it."""
    try:
        with Image.open(path) as image:
            return image.size, image.mode
    except IMAGE_DECODE_ERRORS as exc:
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__})") from exc


@dataclass
class SegmentationSet(ImageSet):
    ignore_index: int = DEFAULT_IGNORE_INDEX
    mask_format: str | None = None

    @classmethod
    def open(cls, path: str | Path, ignore_index: int | None = None, mask_format: str | None = None
             ) -> SegmentationSet:
        path = Path(path)
        if mask_format is not None and mask_format not in MASK_FORMATS:
            raise ConfigError(f"mask format {mask_format!r} is not one of {', '.join(MASK_FORMATS)}")
        ignore = DEFAULT_IGNORE_INDEX if ignore_index is None else ignore_index
        if not 0 <= ignore <= 65535:
            raise ConfigError(f"ignore index {ignore} is outside 0..65535")
        if not path.exists():
            raise DataError(f"{path}: data folder not found")
        layout = layout_of(path)
        if layout == "voc":
            root, split = _voc_root(path)  # type: ignore[misc]
            files, source = cls._voc_pairs(root, split), f"PASCAL VOC ({split.name})"
        elif layout == "images+masks":
            root, files, source = path, cls._stem_pairs(path), "images/ + masks/"
        else:
            folder = ImageFolder.open(path)
            if not folder.files or folder.files[0][1] is not None:
                raise DataError(f"{path}: not a segmentation set (images/ + masks/, or PASCAL VOC's JPEGImages/ "
                                "+ SegmentationClass/)")
            return cls(folder.root, folder.files, "none (flat folder)", list(folder.skipped), ignore, mask_format)
        dataset = cls(root, files, source, [], ignore, mask_format)
        for image, mask in files:
            dataset._check_header(image, mask)
        return dataset

    @staticmethod
    def _stem_pairs(root: Path) -> list[tuple[Path, Any]]:
        def listed(folder: Path) -> dict[str, Path]:
            found: dict[str, Path] = {}
            for f in sorted(folder.iterdir()):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    if f.stem in found:
                        raise DataError(f"{f}: two files named {f.stem} (one per stem: {found[f.stem].name})")
                    found[f.stem] = f
            return found

        images, masks = listed(root / "images"), listed(root / "masks")
        if not images:
            raise DataError(f"{root / 'images'}: no image files found")
        for stem, image in images.items():
            if stem not in masks:
                raise DataError(f"{image}: no mask for it in {root / 'masks'} (masks share the image's stem)")
        for stem, mask in masks.items():
            if stem not in images:
                raise DataError(f"{mask}: a mask without an image in {root / 'images'}")
        return [(images[s], masks[s]) for s in images]

    @staticmethod
    def _voc_pairs(root: Path, split: Path) -> list[tuple[Path, Any]]:
        ids = [line.strip() for line in read_text(split, "split file").splitlines() if line.strip()]
        if not ids:
            raise DataError(f"{split}: the split lists no images")
        pairs = []
        for name in ids:
            image, mask = root / "JPEGImages" / f"{name}.jpg", root / "SegmentationClass" / f"{name}.png"
            if not image.is_file():
                raise DataError(f"{image}: listed in {split.name} but missing")
            if not mask.is_file():
                raise DataError(f"{image}: no mask for it ({mask} is missing)")
            pairs.append((image, mask))
        return pairs

    def _check_header(self, image: Path, mask: Path) -> None:
        image_size, _ = _header(image)
        mask_size, mode = _header(mask)
        if mask_size != image_size:
            raise DataError(f"{mask}: mask is {mask_size[0]}x{mask_size[1]}, its image {image.name} is "
                            f"{image_size[0]}x{image_size[1]}")
        if mode not in _PALETTE_MODES + _ID_MODES:
            raise DataError(f"{mask}: a {mode} image, not a mask of class indices (an indexed PNG as VOC ships, "
                            "or grayscale label IDs)")
        if self.mask_format == "label-ids" and mode in _PALETTE_MODES:
            raise DataError(f"{mask}: a palette (indexed) mask where label IDs are expected (--mask-format "
                            "label-ids): give grayscale label-ID masks, or --mask-format palette")
        if self.mask_format == "palette" and mode in _ID_MODES:
            raise DataError(f"{mask}: a grayscale label-ID mask where palette masks are expected "
                            "(--mask-format palette)")

    def label_files(self, reference: Any) -> list[tuple[str, Path]]:
        return [] if reference is None else [(f"mask:{reference.relative_to(self.root).as_posix()}", reference)]

    def load_label(self, reference: Any) -> Mask | None:
        if reference is None:
            return None
        try:
            with Image.open(reference) as image:
                labels = np.asarray(image, dtype=np.int64)  # a palette PNG's values are its indices
        except IMAGE_DECODE_ERRORS as exc:
            raise DataError(f"{reference}: not a readable mask ({exc.__class__.__name__})") from exc
        return Mask(reference, labels, self.ignore_index)
