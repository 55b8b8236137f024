"""An artifact checked against its manifest before it is used: the manifest's own content must still match
its digest, and every file it lists (``.xml`` and ``.bin`` of an IR, the ``.onnx``, the ``.tflite``) must
still have the sha256 recorded at export. A corrupted download, a half-synced artifact store or a swapped file is
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
from edgedeploy.core.hashing import check_digest, sha256_file
from edgedeploy.core.manifest import DIGEST_KEY, manifest_path, read_manifest

__all__ = ["Verification", "check_integrity", "check_files", "cached_sha256"]

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


def check_files(artifact: Path, entries: object, source: str, why: str) -> list[dict[str, Any]]:
    """Check the files ``entries`` (``[{"name", "sha256"}]`` from ``source``: a manifest, a results
    file) list beside ``artifact``, which must be one of them. ArtifactMismatchError (exit 3) on the
    first that differs, InputFileError if one is missing or an entry is malformed."""
    listed = []
    for entry in entries if isinstance(entries, list) else [entries]:
        name, digest = (entry.get("name"), entry.get("sha256")) if isinstance(entry, dict) else (None, None)
        # Entries name files beside the artifact, never elsewhere (no "../", no absolute paths).
        if not isinstance(name, str) or not name or Path(name).name != name or not isinstance(digest, str):
            raise InputFileError(f"{source}: corrupt (bad files entry {entry!r:.80})")
        listed.append((artifact.with_name(name), digest))
    if artifact not in [path for path, _ in listed]:
        # A renamed or copied artifact whose record still names the old file: nothing would check it.
        raise InputFileError(f"{source}: does not list {artifact.name} (renamed after export?)")
    checked = []
    for path, expected in listed:
        if not path.is_file():
            raise InputFileError(f"{path}: listed in {source} but missing")
        actual = cached_sha256(path)
        if actual != expected:
            raise ArtifactMismatchError(f"{path}: sha256 {actual[:12]}... does not match {why} {expected[:12]}... "
                                        "(the file changed; --no-verify uses it anyway)")
        checked.append({"name": path.name, "sha256": actual, "size_bytes": path.stat().st_size})
    return checked


def check_integrity(artifact: str | Path) -> Verification:
    """Check every file ``artifact``'s manifest lists (``check_files``). No manifest: nothing to
    check (verified None)."""
    artifact = Path(artifact)
    manifest = read_manifest(artifact)
    if manifest is None:
        return Verification(None)
    start = time.perf_counter()
    data = manifest.data
    check_digest(data, DIGEST_KEY, str(manifest_path(artifact)))
    entries = data.get("files") or {"name": artifact.name, "sha256": data.get("sha256")}
    checked = check_files(artifact, entries, manifest_path(artifact).name, "the manifest's")
    return Verification(True, checked, time.perf_counter() - start)
