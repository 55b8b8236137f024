"""The on-disk cache for expensive intermediates (calibration tensors, converted graphs).

Entries are keyed by the content they derive from, written atomically, and safe to
delete at any time. Location: $EDGEDEPLOY_CACHE, else ~/.cache/edgedeploy.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["cache_dir", "content_key"]


def cache_dir(kind: str) -> Path:
    root = Path(os.environ.get("EDGEDEPLOY_CACHE") or Path.home() / ".cache" / "edgedeploy")
    path = root / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def content_key(*parts: Any) -> str:
    """A stable hex key for JSON-serialisable parts (dicts are key-sorted)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]
