"""``edgedeploy inspect`` for OpenVINO IR: IO, op histogram, convolutions fed by a FakeQuantize."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from edgedeploy.core.manifest import read_manifest
from edgedeploy.runtimes.base import LoadOptions
from edgedeploy.runtimes.openvino.graph import quantized_convolutions
from edgedeploy.runtimes.openvino.runner import read_ir

__all__ = ["inspect"]


def inspect(model: str, options: LoadOptions) -> dict[str, Any]:
    """IR facts: IO, op histogram, and how many convolutions are preceded by FakeQuantize (int8)."""
    path = Path(model)
    ir = read_ir(path)
    ops = ir.get_ordered_ops()
    histogram = Counter(op.get_type_name() for op in ops)

    def describe(port: Any) -> dict[str, Any]:
        shape = [d.get_length() if d.is_static else "?" for d in port.get_partial_shape()]
        return {"name": port.get_any_name(), "shape": shape, "dtype": port.get_element_type().get_type_name()}

    quantized, total = quantized_convolutions(ir)
    manifest = read_manifest(path)
    return {
        "model": str(path),
        "runtime": "openvino",
        "size_bytes": sum(p.stat().st_size for p in (path, path.with_suffix(".bin")) if p.is_file()),
        "inputs": [describe(p) for p in ir.inputs],
        "outputs": [describe(p) for p in ir.outputs],
        "nodes": len(ops),
        "ops": dict(histogram.most_common()),
        "convolutions": total,
        "quantized_convolutions": quantized,
        "manifest": manifest.data if manifest else None,
    }
