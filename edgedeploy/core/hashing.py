"""Content hashes for artifacts, weights and caches."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["sha256_file", "sha256_files"]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_files(files: list[tuple[str, Path]]) -> str:
    """One digest over (name, content) pairs: a renamed, added or changed file changes it."""
    h = hashlib.sha256()
    for name, path in files:
        h.update(name.encode() + b"\0")
        h.update(sha256_file(path).encode())
    return h.hexdigest()
