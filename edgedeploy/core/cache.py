"""The on-disk cache for expensive intermediates (calibration tensors, converted graphs).

Entries are keyed by the content they derive from, written atomically, and safe to
delete at any time. Location: $EDGEDEPLOY_CACHE, else ~/.cache/edgedeploy.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["cache_dir", "content_key", "code_fingerprint"]


def cache_dir(kind: str) -> Path:
    root = Path(os.environ.get("EDGEDEPLOY_CACHE") or Path.home() / ".cache" / "edgedeploy")
    path = root / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def content_key(*parts: Any) -> str:
    """A stable hex key for JSON-serialisable parts (dicts are key-sorted)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


# The edgedeploy package: every layer's source, not only core's.
PACKAGE = Path(__file__).resolve().parents[1]


@functools.cache
def code_fingerprint(package: Path = PACKAGE) -> str:
    """A digest of edgedeploy's own source (every .py and .yaml under ``package``): an editable install
    keeps its version number while its code changes, and a cached build or accuracy figure must not
    outlive the code that made it."""
    h = hashlib.sha256()
    for path in sorted(package.rglob("*")):
        if path.suffix in (".py", ".yaml") and path.is_file():
            h.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]
