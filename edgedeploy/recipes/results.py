"""The results file of a run (``results.json``, schema ``edgedeploy.results/2``): its names, its
reader and the figures read out of it. Torch-free, so ``report``, ``gate --results`` and ``compare``
run on a machine with no ML stack.

Schema 2 adds the per-image evidence file (``evidence``), the bench rounds (``bench``) and, per
target, paired accuracy statistics and latency ratios against the float target; schema 1 files
are still read (their accuracy is gated on point estimates)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgedeploy.core.errors import InputFileError, ResultsError
from edgedeploy.core.hashing import check_digest
from edgedeploy.core.integrity import check_files, check_integrity
from edgedeploy.core.jsonfile import parse_json
from edgedeploy.core.paths import MAX_JSON_BYTES, read_text
from edgedeploy.core.stats import Interval, ratio_of_medians
from edgedeploy.exporter.targets import float_counterpart

__all__ = ["DIGEST_KEY", "RESULTS_FILE", "RESULTS_SCHEMA", "ARTIFACTS_DIR", "read_results", "read_versioned_json", "check_finite", "verify_result_artifacts",
           "timed_samples", "latency_ratio", "int8_features"]

RESULTS_FILE = "results.json"
RESULTS_SCHEMA = "edgedeploy.results/2"
# Older schemas this version still reads.
READABLE_SCHEMAS = ("edgedeploy.results/1", RESULTS_SCHEMA)
ARTIFACTS_DIR = "artifacts"
# The digest of a results file's own content (edgedeploy.core.hashing), checked whenever one is read.
DIGEST_KEY = "results_sha256"


def read_versioned_json(path: str | Path, what: str, schemas: tuple[str, ...], entries: str) -> dict[str, Any]:
    """A JSON results file of one of ``schemas`` with a dict under ``entries``, every figure finite;
    InputFileError (exit 3) naming the file otherwise."""
    path = Path(path)
    text = read_text(path, what, MAX_JSON_BYTES)
    try:
        data = parse_json(text)
    except (ValueError, RecursionError) as exc:
        raise InputFileError(f"{path}: not a {what} ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("schema") not in schemas or not isinstance(data.get(entries), dict):
        raise InputFileError(f"{path}: not an edgedeploy {what} (expected schema {schemas[-1]})")
    # Files of the first schema predate the digest: read as documented, unless they carry one.
    if data["schema"] != "edgedeploy.results/1" or DIGEST_KEY in data:
        check_digest(data, DIGEST_KEY, str(path), "rerun it (a results file is never edited by hand)")
    check_finite({"reference": data.get("reference"), "targets": data[entries]}, str(path))
    return data


def read_results(path: str | Path) -> dict[str, Any]:
    return read_versioned_json(path, "results file", READABLE_SCHEMAS, "targets")


def check_finite(results: dict[str, Any], source: str) -> None:
    """ResultsError (exit 6) naming the target and field of the first NaN or infinite figure: a NaN
    compares false with every limit, so it would pass or fail a check by accident."""
    for owner, entry in [("reference", results.get("reference")), *results["targets"].items()]:
        for field, value in _numbers(entry):
            if not math.isfinite(value):
                raise ResultsError(f"{source}: {owner}: {field} is {value}, not a number a gate can compare")


def _numbers(value: object, where: str = "") -> Iterator[tuple[str, float]]:
    """Every float in a nested results entry, with its dotted field name (json reads NaN/Infinity as floats)."""
    if isinstance(value, float):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _numbers(item, f"{where}[{i}]")


def verify_result_artifacts(results: dict[str, Any], results_dir: Path,
                            public_key: Path | None = None) -> dict[str, bool | None]:
    """Each measured target's artifact, where it is still beside the results file, checked against
    its manifest and against the digests the results recorded (every file; older results: the
    primary one), and with ``public_key`` its signature. ArtifactMismatchError (exit 3) on a difference. None:
    the artifact is not there (results copied without artifacts), so nothing was checked; with ``public_key``
    that is an error (a signature requirement cannot pass unchecked)."""
    verified: dict[str, bool | None] = {}
    for name, entry in results["targets"].items():
        artifact = entry.get("artifact") if isinstance(entry, dict) else None
        if entry.get("status") != "ok" or not isinstance(artifact, str) or not (results_dir / artifact).is_file():
            if public_key is not None and entry.get("status") == "ok":
                raise InputFileError(f"{name}: its artifact is not beside the results, so its signature cannot be "
                                     "checked (--public-key)")
            verified[name] = None
            continue
        path = results_dir / artifact
        if check_integrity(path).verified is not True:
            raise InputFileError(f"{path}: its manifest is missing, so it cannot be checked (--no-verify gates anyway)")
        recorded = entry.get("files") or {"name": path.name, "sha256": entry.get("sha256")}
        check_files(path, recorded, f"the results' {name} entry", "the sha256 these results measured,")
        if public_key is not None:
            from edgedeploy.core.signing import verify_signature

            verify_signature(path, public_key)
        verified[name] = True
    return verified


def timed_samples(entry: dict[str, Any], device: str) -> list[float]:
    """Every timed run of a target (or the reference) on ``device``; empty where the tool reported
    summary statistics only (benchmark_model on a phone)."""
    return list((entry.get("latency") or {}).get(device, {}).get("samples_ms") or [])


def latency_ratio(targets: dict[str, Any], name: str, device: str, confidence: float) -> Interval | None:
    """p50 of ``name`` / p50 of the float target on its runtime, on ``device``, with a bootstrap
    interval from both targets' timed runs; None without a float counterpart or without samples."""
    counterpart = targets.get(float_counterpart(name))
    if counterpart is None or counterpart.get("status") != "ok" or targets[name].get("status") != "ok":
        return None
    own, other = timed_samples(targets[name], device), timed_samples(counterpart, device)
    if len(own) < 2 or len(other) < 2:
        return None
    return ratio_of_medians(own, other, confidence)


def int8_features(host: str | None) -> str | None:
    """The int8 instruction-set features a results file's host line names (``describe_host``), or
    None when it names none (older files): int8/fp32 latency only compares between equal ones."""
    if not host or "int8 features: " not in host:
        return None
    return host.split("int8 features: ", 1)[1].strip()
