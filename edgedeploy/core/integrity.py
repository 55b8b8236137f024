"""An artifact checked against its manifest before it is used: every file the manifest lists
(``.xml`` and ``.bin`` of an IR, the ``.onnx``, the ``.tflite``) must still have the sha256
recorded at export. A corrupted download, a half-synced artifact store or a swapped file is
refused instead of being measured and reported as the exported model.

Hashes are kept per (path, size, mtime) for the life of the process, so a command that loads
the same artifact twice (eval with a reference, run over several devices) hashes it once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgedeploy.core.errors import ArtifactMismatchError, InputFileError
from edgedeploy.core.hashing import sha256_file
from edgedeploy.core.manifest import Manifest, manifest_path, read_manifest

__all__ = ["Verification", "verify_artifact", "cached_sha256"]

_HASHES: dict[tuple[str, int, int], str] = {}


def cached_sha256(path: Path) -> str:
    """sha256 of ``path``, remembered while its size and modification time stay the same."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        _HASHES[key] = sha256_file(path)
    return _HASHES[key]


@dataclass(frozen=True)
class Verification:
    """What was checked: ``verified`` is True when every listed file matched, False when the
    check was skipped (--no-verify), None when there is no manifest to check against."""

    verified: bool | None
    # The files checked: name, sha256, size_bytes.
    files: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def _listed_files(artifact: Path, manifest: Manifest) -> list[tuple[Path, str]]:
    data = manifest.data
    entries = data.get("files") or [{"name": artifact.name, "sha256": data.get("sha256")}]
    listed = []
    for entry in entries:
        name, digest = (entry.get("name"), entry.get("sha256")) if isinstance(entry, dict) else (None, None)
        # A manifest names files beside it, never elsewhere (no "../", no absolute paths).
        if not isinstance(name, str) or not name or Path(name).name != name or not isinstance(digest, str):
            raise InputFileError(f"{manifest_path(artifact)}: corrupt manifest (bad files entry {entry!r:.80})")
        listed.append((artifact.with_name(name), digest))
    if artifact not in [path for path, _ in listed]:
        # A renamed or copied artifact whose manifest still names the old file: nothing would check it.
        raise InputFileError(f"{manifest_path(artifact)}: does not list {artifact.name} (renamed after export?)")
    return listed


def verify_artifact(artifact: str | Path) -> Verification:
    """Check every file ``artifact``'s manifest lists; ArtifactMismatchError (exit 3) on the first
    that differs, InputFileError if one is missing. No manifest: nothing to check (verified None)."""
    artifact = Path(artifact)
    manifest = read_manifest(artifact)
    if manifest is None:
        return Verification(None)
    start = time.perf_counter()
    checked = []
    for path, expected in _listed_files(artifact, manifest):
        if not path.is_file():
            raise InputFileError(f"{path}: listed in {manifest_path(artifact).name} but missing")
        actual = cached_sha256(path)
        if actual != expected:
            raise ArtifactMismatchError(
                f"{path}: sha256 {actual[:12]}... does not match the manifest's {expected[:12]}... "
                "(the file changed after export; --no-verify uses it anyway)")
        checked.append({"name": path.name, "sha256": actual, "size_bytes": path.stat().st_size})
    return Verification(True, checked, time.perf_counter() - start)
