"""Where the sample data lives: $EDGEDEPLOY_DATA, else ./data, else ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

from edgedeploy.core.errors import DataError

__all__ = ["data_root", "find_data_root", "SAMPLE_WEIGHTS", "VAL_DIR", "CALIB_DIR", "SYNSETS"]

SAMPLE_WEIGHTS = "mobilenet_v2_imagenet.pth"
VAL_DIR = "imagenet-subset/val"
CALIB_DIR = "imagenet-subset/calib"
SYNSETS = "imagenet-subset/synsets.txt"


def _candidates() -> list[Path]:
    env = os.environ.get("EDGEDEPLOY_DATA")
    if env:
        return [Path(env)]
    return [Path("data"), Path("..") / "shared" / "data"]


def find_data_root() -> Path | None:
    """The first candidate folder holding the sample weights, or None."""
    for candidate in _candidates():
        if (candidate / SAMPLE_WEIGHTS).is_file():
            return candidate.resolve()
    return None


def data_root() -> Path:
    root = find_data_root()
    if root is None:
        tried = ", ".join(str(c) for c in _candidates())
        raise DataError(
            f"sample data not found (looked for {SAMPLE_WEIGHTS} in {tried}); "
            "set EDGEDEPLOY_DATA to the folder that holds it"
        )
    return root
