"""A content-addressed cache of exported artifacts, so an unchanged target is not rebuilt.

The key covers everything that decides the artifact's bytes and manifest: the export
request (options, parity settings), the weights' content, the calibration images'
content, the accuracy-control data's content, the versions of every package the
target's conversion uses, and a digest of edgedeploy's own source. An entry is reused only if every file
still matches the sha256 its manifest records; it is then copied into the output folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from edgedeploy.core.artifacts import atomic_path, atomic_write_text
from edgedeploy.core.cache import cache_dir, code_fingerprint, content_key
from edgedeploy.core.hashing import sha256_file
from edgedeploy.core.jsonfile import json_text
from edgedeploy.core.manifest import TOOL_PACKAGES, manifest_path, tool_versions
from edgedeploy.data.calibration import calibration_fingerprint
from edgedeploy.exporter.onnx_source import onnx_fingerprint
from edgedeploy.exporter.pipeline import ExportRequest, export
from edgedeploy.exporter.targets import get_target
from edgedeploy.models import model_task
from edgedeploy.models.weights import weights_fingerprint
from edgedeploy.tasks import get_task

__all__ = ["build_key", "cached_export", "conversion_packages"]

RECORD = "result.json"


def conversion_packages(extra: str | None) -> tuple[str, ...]:
    """The packages a target's conversion depends on: the core requirements plus its extra's."""
    try:
        requirements = metadata.requires("edgedeploy") or []
    except metadata.PackageNotFoundError:  # running from a source tree that was never installed
        return TOOL_PACKAGES
    names = []
    for line in requirements:
        marker = line.split(";", 1)[1] if ";" in line else ""
        if not marker or (extra and f'extra == "{extra}"' in marker):
            match = re.match(r"[A-Za-z0-9_.-]+", line)
            if match:
                names.append(match.group(0))
    return tuple(sorted(set(names)))


def build_key(request: ExportRequest) -> str:
    target = get_target(request.target)
    options = {k: asdict(v) if is_dataclass(v) and not isinstance(v, type) else v for k, v in request.fields().items()}
    # Where the build lands and how many threads check it do not change it.
    for field in ("out_dir", "threads"):
        options.pop(field)
    calibration = (calibration_fingerprint(request.calib_dir, request.calib_size, request.calib_seed)
                   if target.calibrated and request.calib_dir is not None else None)
    # ONNX in: the file and its external data by content (classifiers only); else the weights by content.
    task = get_task(model_task(request.config) if request.config is not None else "classification")
    accuracy_data = task.open_dataset(request.val_dir).fingerprint() if request.val_dir is not None else None
    model = (onnx_fingerprint(request.onnx) if request.onnx is not None
             else weights_fingerprint(request.weights, request.config.arch) if request.config is not None else None)
    return content_key(options, model, calibration, accuracy_data,
                       tool_versions(conversion_packages(target.extra)), code_fingerprint())


def _entry_is_intact(entry: Path) -> dict[str, Any] | None:
    """The stored export result if every file matches its manifest, else None."""
    try:
        record = json.loads((entry / RECORD).read_text())
        manifest = json.loads(manifest_path(entry / record["artifact"]).read_text())
        for f in manifest["files"]:
            if sha256_file(entry / f["name"]) != f["sha256"]:
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


def _publish(entry: Path, record: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """Copy an entry's files into ``out_dir`` (each atomically, the manifest last)."""
    artifact = record["artifact"]
    manifest = json.loads(manifest_path(entry / artifact).read_text())
    names = [f["name"] for f in manifest["files"] if f["name"] != artifact] + [artifact]
    if (entry / f"{artifact}.log").is_file():
        names.append(f"{artifact}.log")
    manifest_path(out_dir / artifact).unlink(missing_ok=True)
    for name in [*names, manifest_path(Path(artifact)).name]:
        with atomic_path(out_dir / name) as tmp:
            shutil.copyfile(entry / name, tmp)
    published = dict(record)
    published["path"] = str(out_dir / artifact)
    published["manifest"] = str(manifest_path(out_dir / artifact))
    published["log"] = str(out_dir / f"{artifact}.log") if (out_dir / f"{artifact}.log").is_file() else None
    return published


def cached_export(
    request: ExportRequest, force: bool = False, on_step: Callable[[str], None] | None = None
) -> tuple[dict[str, Any], bool]:
    """Export ``request`` (or reuse an identical earlier build); returns (result dict, cached)."""
    key = build_key(request)
    entry = cache_dir("builds") / key
    record = None if force else _entry_is_intact(entry)
    cached = record is not None
    if record is None:
        # Built in a private folder and renamed into place: two runs building the same key at
        # once never see each other's half-built entry; the first to finish publishes it.
        staging = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=entry.parent))
        try:
            result = export(request.replace(out_dir=staging), on_step=on_step).to_dict()
            record = {**result, "artifact": Path(result["path"]).name, "build_key": key}
            atomic_write_text(staging / RECORD, json_text(record, indent=1))
            if _entry_is_intact(entry) is None or force:
                shutil.rmtree(entry, ignore_errors=True)
                try:
                    os.rename(staging, entry)
                except OSError:
                    pass  # another process published this key meanwhile: the same inputs, the same build
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return _publish(entry, record, Path(request.out_dir)), cached
