"""The JSON manifest written beside every artifact, and reading it back.

``<artifact>.manifest.json`` records what the file is (target, sha256, size),
how to feed it (input spec, preprocessing), where it came from (weights sha256,
model config, tool versions) and how close it is to PyTorch (parity).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from edgedeploy.core.artifacts import atomic_write_text
from edgedeploy.core.errors import InputFileError
from edgedeploy.core.hashing import with_digest
from edgedeploy.core.io_spec import DEFAULT_TASK, InputSpec, ModelIO, OutputSpec, Preprocessing
from edgedeploy.core.jsonfile import json_text, parse_json
from edgedeploy.core.paths import read_text
from edgedeploy.core.version import __version__

__all__ = ["created_utc", "MANIFEST_SUFFIX", "DIGEST_KEY", "SCHEMA_VERSION", "manifest_path", "read_manifest", "write_manifest", "tool_versions", "Manifest"]

MANIFEST_SUFFIX = ".manifest.json"
# The manifest's digest of its own content (edgedeploy.core.hashing), checked by every loading command.
DIGEST_KEY = "manifest_sha256"
SCHEMA_VERSION = 1
TOOL_PACKAGES = ("torch", "onnx", "onnxruntime", "onnxsim", "numpy")


def created_utc() -> str:
    """Now, or $SOURCE_DATE_EPOCH (the reproducible-builds convention): with it set, two exports of
    the same inputs give byte-identical manifests as well as artifacts."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch and epoch.isdigit() else datetime.now(timezone.utc)
    return moment.isoformat(timespec="seconds")


def manifest_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + MANIFEST_SUFFIX)


def tool_versions(packages: tuple[str, ...] = TOOL_PACKAGES) -> dict[str, str]:
    versions = {"edgedeploy": __version__, "python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


@dataclass(frozen=True)
class Manifest:
    data: dict[str, Any]

    @property
    def io(self) -> ModelIO:
        return ModelIO(
            input=InputSpec.from_dict(self.data["input"]),
            output=OutputSpec.from_dict(self.data["output"]),
            more_outputs=tuple(OutputSpec.from_dict(o) for o in self.data.get("more_outputs", ())),
            preprocessing=Preprocessing.from_dict(self.data["preprocessing"]),
            task=str(self.data.get("task", DEFAULT_TASK)),
            extra=dict(self.data.get("io_extra", {})),
        )

    @property
    def target(self) -> str:
        return str(self.data["target"])


def write_manifest(artifact: Path, data: dict[str, Any]) -> Path:
    path = manifest_path(artifact)
    document = with_digest({"schema_version": SCHEMA_VERSION, **data}, DIGEST_KEY)
    atomic_write_text(path, json_text(document, indent=2) + "\n")
    return path


# The sections readers look into, by the type they must have (a bit flip turns "target" into "targeu").
_SECTIONS: dict[str, type] = {"target": str, "files": list, "model": dict, "precision": dict, "parity": dict,
                              "weights": dict, "export": dict}


def _check_sections(data: dict[str, Any]) -> None:
    if not isinstance(data.get("target"), str):
        raise KeyError("target")
    for key, kind in _SECTIONS.items():
        if key in data and data[key] is not None and not isinstance(data[key], kind):
            raise TypeError(f"{key} is a {type(data[key]).__name__}, not a {kind.__name__}")
    for entry in data.get("files") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or \
                not isinstance(entry.get("sha256"), str):
            raise TypeError("files: each entry needs a name and a sha256")


def read_manifest(artifact: str | Path) -> Manifest | None:
    """The manifest beside ``artifact``; None if there is none; InputFileError if it is corrupt."""
    path = manifest_path(artifact)
    if not path.is_file():
        return None
    try:
        data = parse_json(read_text(path, "manifest"))
        manifest = Manifest(data)
        manifest.io  # validates the fields every runner needs
        _check_sections(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # any malformed shape (fuzzed)
        raise InputFileError(f"{path}: corrupt manifest ({exc.__class__.__name__}: {str(exc)[:80]})") from exc
    return manifest
