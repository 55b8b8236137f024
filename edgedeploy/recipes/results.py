"""The results file of a run (``results.json``, schema ``edgedeploy.results/1``): its names and
its reader. Torch-free, so ``report`` and ``gate --results`` run on a machine with no ML stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgedeploy.core.errors import InputFileError

__all__ = ["RESULTS_FILE", "RESULTS_SCHEMA", "ARTIFACTS_DIR", "read_results"]

RESULTS_FILE = "results.json"
RESULTS_SCHEMA = "edgedeploy.results/1"
ARTIFACTS_DIR = "artifacts"


def read_results(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputFileError(f"{path}: results file not found") from None
    except (OSError, ValueError) as exc:
        raise InputFileError(f"{path}: not a results file ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("schema") != RESULTS_SCHEMA or not isinstance(data.get("targets"), dict):
        raise InputFileError(f"{path}: not an edgedeploy results file (expected schema {RESULTS_SCHEMA})")
    return data
