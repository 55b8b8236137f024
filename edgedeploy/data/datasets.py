"""Sets of images: ``ImageSet`` (listed files, each with an optional label, decoded lazily) and
``ImageFolder``, the classification layout (``<wnid>/<image>``) or a flat folder of images.

Class indices come from ``synsets.txt`` (line number of the wnid) when one is
given or found beside the folder, else from the sorted folder names, as
torchvision's ImageFolder does. Files that are not images are skipped and counted.
Other tasks' layouts (segmentation: images with masks) are ``ImageSet`` subclasses in their
task's module.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from PIL import Image

from edgedeploy.core.errors import DataError
from edgedeploy.core.hashing import sha256_file, sha256_files
from edgedeploy.core.paths import read_text
from edgedeploy.data.preprocess import load_image

__all__ = ["ImageSet", "ImageFolder", "LabeledImage", "read_synsets", "IMAGE_SUFFIXES"]

_Set = TypeVar("_Set", bound="ImageSet")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm"})


def read_synsets(path: str | Path) -> dict[str, int]:
    """``wnid description`` per line -> {wnid: line index}."""
    path = Path(path)
    lines = read_text(path, "synsets file").splitlines()
    wnids = [line.split()[0] for line in lines if line.strip()]
    if not wnids:
        raise DataError(f"{path}: synsets file is empty")
    return {wnid: i for i, wnid in enumerate(wnids)}


@dataclass(frozen=True)
class LabeledImage:
    path: Path
    # What the task's metrics compare against: a class index, a mask, or None (unlabeled).
    label: Any
    image: Image.Image


@dataclass
class ImageSet:
    """Images listed once, each with a label reference (a class index, a mask file, or None);
    images and labels are decoded lazily while iterating."""

    root: Path
    files: list[tuple[Path, Any]]
    class_source: str
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    # Each image is its file's content (False for made-up images: the reference cache must not key them by a path).
    from_files: ClassVar[bool] = True

    def load_label(self, reference: Any) -> Any:
        """A file's label from its reference (a class index is its own label; a mask file is read)."""
        return reference

    def label_files(self, reference: Any) -> list[tuple[str, Path]]:
        """Files a label reference reads (their content is part of the set's fingerprint)."""
        return []

    def with_files(self: _Set, files: list[tuple[Path, Any]]) -> _Set:
        """The same set (layout, options) restricted to ``files``, with nothing skipped yet."""
        return dataclasses.replace(self, files=files, skipped=[])

    def unlabeled(self: _Set) -> _Set:
        """The images alone: for comparisons that need no labels (parity, diagnose, calibration)."""
        return self.with_files([(p, None) for p, _ in self.files])

    @property
    def labeled(self) -> bool:
        return bool(self.files) and self.files[0][1] is not None

    def __len__(self) -> int:
        return len(self.files)

    def subset(self: _Set, limit: int | None, seed: int | None = None) -> _Set:
        """The first ``limit`` files, or a seeded random sample of them when ``seed`` is set."""
        if limit is None or limit >= len(self.files):
            return self
        if limit < 1:
            raise DataError(f"--limit must be at least 1, got {limit}")
        files = random.Random(seed).sample(self.files, limit) if seed is not None else self.files[:limit]
        return dataclasses.replace(self, files=files, skipped=list(self.skipped))

    def fingerprint(self) -> str:
        """A digest of the files and their labels: equal fingerprints, equal evaluation data."""
        entries: list[tuple[str, Path]] = []
        for p, label in self.files:
            entries.append((f"{p.relative_to(self.root).as_posix()}:{self._label_text(label)}", p))
            entries.extend(self.label_files(label))
        return sha256_files(entries)

    def _label_text(self, reference: Any) -> str:
        return str(reference) if not isinstance(reference, Path) else reference.relative_to(self.root).as_posix()

    def digests(self) -> dict[Path, str]:
        """Each file's sha256: an image's identity wherever the folder is (per-image evidence is keyed by it)."""
        return {p: sha256_file(p) for p, _ in self.files}

    def __iter__(self) -> Iterator[LabeledImage]:
        """Decode images one at a time (memory stays flat); undecodable files are skipped."""
        for path, reference in self.files:
            try:
                image = load_image(path)
            except DataError as exc:
                self.skipped.append((path, str(exc).split(": ", 1)[-1]))
                continue
            yield LabeledImage(path, self.load_label(reference), image)


@dataclass
class ImageFolder(ImageSet):
    """A classification folder (``<class>/<image>``) or a flat folder of images, listed once."""

    @classmethod
    def open(cls, root: str | Path, synsets: str | Path | None = None) -> ImageFolder:
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"{root}: image folder not found")
        subdirs = sorted(p for p in root.iterdir() if p.is_dir())
        skipped: list[tuple[Path, str]] = []
        files: list[tuple[Path, int | None]] = []
        if subdirs:
            class_index, class_source = cls._class_index(root, subdirs, synsets)
            for d in subdirs:
                if d.name not in class_index:
                    raise DataError(f"{d}: folder name {d.name!r} is not in {class_source}")
                for f in sorted(p for p in d.iterdir() if p.is_file()):
                    cls._add(f, class_index[d.name], files, skipped)
        else:
            class_source = "none (flat folder)"
            for f in sorted(p for p in root.iterdir() if p.is_file()):
                cls._add(f, None, files, skipped)
        if not files:
            raise DataError(f"{root}: no image files found")
        return cls(root, files, class_source, skipped)

    @staticmethod
    def _class_index(
        root: Path, subdirs: list[Path], synsets: str | Path | None
    ) -> tuple[dict[str, int], str]:
        if synsets is None:
            # The shared data keeps synsets.txt beside the split folders.
            for candidate in (root / "synsets.txt", root.parent / "synsets.txt"):
                if candidate.is_file():
                    synsets = candidate
                    break
        if synsets is not None:
            return read_synsets(synsets), str(synsets)
        return {d.name: i for i, d in enumerate(subdirs)}, "sorted folder names"

    @staticmethod
    def _add(
        f: Path, label: int | None, files: list[tuple[Path, int | None]], skipped: list[tuple[Path, str]]
    ) -> None:
        if f.suffix.lower() in IMAGE_SUFFIXES:
            files.append((f, label))
        elif not f.name.startswith("."):
            skipped.append((f, "not an image file"))
