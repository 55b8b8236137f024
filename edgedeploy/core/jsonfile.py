"""JSON as edgedeploy writes it: strict JSON only. Python's json writes NaN and Infinity, which no other JSON
reader accepts (and which a manifest, a results file or ``--json`` output would then carry); a figure that is not a
number is written as null, which every reader takes as "no value" and the gate refuses (fails closed)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

# Nesting no file edgedeploy reads comes near (a results file nests about 8 deep).
MAX_JSON_DEPTH = 200
# A JSON string (escapes included): its brackets are text, not nesting.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)

__all__ = ["MAX_JSON_DEPTH", "finite", "json_text", "parse_json"]


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


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` of untrusted text, refusing nesting deeper than MAX_JSON_DEPTH first (ValueError): json's C
    scanner recurses per level, and where a library has raised the recursion limit (TensorFlow, onnx2tf do) a
    file of nested brackets overflows the C stack - a segmentation fault - before Python's RecursionError."""
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    skeleton = np.frombuffer(_STRING.sub(b'""', data), np.uint8)
    steps = (np.isin(skeleton, (ord("["), ord("{"))).astype(np.int32)
             - np.isin(skeleton, (ord("]"), ord("}"))).astype(np.int32))
    if steps.size and int(np.cumsum(steps).max()) > MAX_JSON_DEPTH:
        raise ValueError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    return json.loads(text)
