"""Content hashes: of files (artifacts, weights, caches) and of a JSON document's own content.

Manifests and results files carry a digest of their own content, and whoever loads them recomputes it. The manifest decides how inputs are fed (mean, std, layout, IO
quantization), so an edited manifest beside an untouched artifact would otherwise be measured and reported
as the exported model; a results file decides what the gate passes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgedeploy.core.errors import ArtifactMismatchError
from edgedeploy.core.jsonfile import finite

__all__ = ["sha256_file", "sha256_files", "content_digest", "with_digest", "check_digest"]


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


def content_digest(data: Mapping[str, Any], key: str) -> str:
    """sha256 of ``data`` without ``key``, canonical JSON (sorted keys, no whitespace): independent of how the
    file was indented, the same after a JSON round trip."""
    body = {k: v for k, v in data.items() if k != key}
    return hashlib.sha256(json.dumps(finite(body), sort_keys=True, separators=(",", ":"), allow_nan=False).encode()).hexdigest()


def with_digest(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``data`` with its content digest under ``key`` (last)."""
    body = {k: v for k, v in data.items() if k != key}
    return {**body, key: content_digest(body, key)}


def check_digest(data: Mapping[str, Any], key: str, source: str,
                 remedy: str = "re-export it, or --no-verify to use it unchecked") -> None:
    """ArtifactMismatchError (exit 3) when ``data`` has no digest under ``key`` or its content no longer matches;
    ``remedy`` says what the user can do."""
    recorded = data.get(key)
    if not isinstance(recorded, str):
        raise ArtifactMismatchError(f"{source}: records no content digest ({key}; written by an older edgedeploy, "
                                    f"or removed): {remedy}")
    actual = content_digest(data, key)
    if actual != recorded:
        raise ArtifactMismatchError(f"{source}: its content changed after it was written (digest {actual[:12]}... "
                                    f"!= recorded {recorded[:12]}...): {remedy}")
