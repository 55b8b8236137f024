"""JSON as edgedeploy writes it: strict JSON only. Python's json writes NaN and Infinity, which no other JSON
reader accepts (and which a manifest, a results file or ``--json`` output would then carry); a figure that is not a
number is written as null, which every reader takes as "no value" and the gate refuses (fails closed)."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["json_text", "finite"]


def finite(value: Any) -> Any:
    """``value`` with every non-finite float (at any depth) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def json_text(value: Any, indent: int | None = None, default: Any = None) -> str:
    """``value`` as strict JSON text: non-finite floats (numpy's too, once ``default`` has turned them into
    Python floats) become null."""
    if default is not None:
        # Objects json cannot write (numpy scalars, paths) are converted first so their NaNs are caught too.
        value = json.loads(json.dumps(value, default=default))
    return json.dumps(finite(value), indent=indent, allow_nan=False)
