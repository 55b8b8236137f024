"""Image folders: ImageFolder layout (``<wnid>/<image>``) or a flat folder of images.

Class indices come from ``synsets.txt`` (line number of the wnid) when one is
given or found beside the folder, else from the sorted folder names, as
torchvision's ImageFolder does. Files that are not images are skipped and counted.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from edgedeploy.core.errors import DataError
from edgedeploy.core.hashing import sha256_file, sha256_files
from edgedeploy.data.preprocess import load_image

__all__ = ["ImageFolder", "LabeledImage", "read_synsets"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm"})


def read_synsets(path: str | Path) -> dict[str, int]:
    """``wnid description`` per line -> {wnid: line index}."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read synsets file ({exc.__class__.__name__})") from exc
    wnids = [line.split()[0] for line in lines if line.strip()]
    if not wnids:
        raise DataError(f"{path}: synsets file is empty")
    return {wnid: i for i, wnid in enumerate(wnids)}


@dataclass(frozen=True)
class LabeledImage:
    path: Path
    label: int | None
    image: Image.Image


@dataclass
class ImageFolder:
    """A folder of images, listed once; images are decoded lazily while iterating."""

    root: Path
    files: list[tuple[Path, int | None]]
    class_source: str
    skipped: list[tuple[Path, str]] = field(default_factory=list)

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

    @property
    def labeled(self) -> bool:
        return self.files[0][1] is not None

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, limit: int | None, seed: int | None = None) -> ImageFolder:
        """The first ``limit`` files, or a seeded random sample of them when ``seed`` is set."""
        if limit is None or limit >= len(self.files):
            return self
        if limit < 1:
            raise DataError(f"--limit must be at least 1, got {limit}")
        files = random.Random(seed).sample(self.files, limit) if seed is not None else self.files[:limit]
        return ImageFolder(self.root, files, self.class_source, list(self.skipped))

    def fingerprint(self) -> str:
        """A digest of the files and their labels: equal fingerprints, equal evaluation data."""
        return sha256_files([(f"{p.relative_to(self.root).as_posix()}:{label}", p) for p, label in self.files])

    def digests(self) -> dict[Path, str]:
        """Each file's sha256: an image's identity wherever the folder is (per-image evidence is keyed by it)."""
        return {p: sha256_file(p) for p, _ in self.files}

    def __iter__(self) -> Iterator[LabeledImage]:
        """Decode images one at a time (memory stays flat); undecodable files are skipped."""
        for path, label in self.files:
            try:
                image = load_image(path)
            except DataError as exc:
                self.skipped.append((path, str(exc).split(": ", 1)[-1]))
                continue
            yield LabeledImage(path, label, image)
