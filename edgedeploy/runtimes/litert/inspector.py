"""``edgedeploy inspect`` for .tflite files: IO with quantization, op histogram, integer-only or not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgedeploy.core.manifest import read_manifest
from edgedeploy.runtimes.base import LoadOptions
from edgedeploy.runtimes.litert.graph import graph_summary
from edgedeploy.runtimes.litert.runner import open_interpreter

__all__ = ["inspect"]


def inspect(model: str, options: LoadOptions) -> dict[str, Any]:
    path = Path(model)
    interpreter = open_interpreter(path)

    def describe(d: dict[str, Any]) -> dict[str, Any]:
        scale, zero_point = d["quantization"]
        q = {"scale": float(scale), "zero_point": int(zero_point)} if scale else None
        return {"name": d["name"], "shape": [int(x) for x in d["shape"]], "dtype": d["dtype"].__name__, "quantization": q}

    summary = graph_summary(path)
    manifest = read_manifest(path)
    return {
        "model": str(path),
        "runtime": "litert",
        "size_bytes": path.stat().st_size,
        "inputs": [describe(d) for d in interpreter.get_input_details()],
        "outputs": [describe(d) for d in interpreter.get_output_details()],
        "nodes": sum(summary["ops"].values()),
        **summary,
        "manifest": manifest.data if manifest else None,
    }
