"""``edgedeploy inspect`` for .pte files: IO, delegated vs portable ops, weight dtypes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from edgedeploy.core.manifest import read_manifest
from edgedeploy.runtimes.base import LoadOptions
from edgedeploy.runtimes.executorch.graph import delegation_summary
from edgedeploy.runtimes.executorch.precision import weight_dtypes
from edgedeploy.runtimes.executorch.runner import dtype_name, load_method

__all__ = ["inspect"]


def inspect(model: str, options: LoadOptions) -> dict[str, Any]:
    path = Path(model)
    meta = load_method(path).metadata  # a file ExecuTorch cannot load stops here, with its reason

    def describe(info: Any, name: str) -> dict[str, Any]:
        return {"name": name, "shape": [int(d) for d in info.sizes()], "dtype": dtype_name(info.dtype())}

    summary = delegation_summary(path)
    manifest = read_manifest(path)
    return {
        "model": str(path),
        "runtime": "executorch",
        "size_bytes": path.stat().st_size,
        "inputs": [describe(meta.input_tensor_meta(i), f"input{i}") for i in range(meta.num_inputs())],
        "outputs": [describe(meta.output_tensor_meta(i), f"output{i}") for i in range(meta.num_outputs())],
        "nodes": summary["delegated_nodes"] + summary["portable_nodes"],
        **summary,
        "weight_dtypes": dict(Counter(w for _, w, _ in weight_dtypes(path)).most_common()),
        "manifest": manifest.data if manifest else None,
    }
