"""``edgedeploy inspect`` for ONNX files: opset, IO, op histogram, parameters."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from edgedeploy.core.errors import InputFileError
from edgedeploy.core.manifest import read_manifest
from edgedeploy.core.onnx_external_data import check_onnx_file
from edgedeploy.runtimes.base import LoadOptions
from edgedeploy.runtimes.onnxruntime.runner import saturation_warning

__all__ = ["inspect"]


def _value_info(v: Any) -> dict[str, Any]:
    import onnx

    t = v.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
    try:
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
    except KeyError:  # a type code ONNX does not define (the checker lets graph IO through)
        dtype = f"unknown ({t.elem_type})"
    return {"name": v.name, "shape": dims, "dtype": dtype}


def inspect(model: str, options: LoadOptions) -> dict[str, Any]:
    import onnx

    path = Path(model)
    checked = check_onnx_file(path)  # every tensor's external data, before any of it is read
    checked.load_data()
    proto = checked.model
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise InputFileError(f"{path}: not a valid ONNX model ({exc.__class__.__name__})") from exc
    graph = proto.graph
    initializers = {i.name for i in graph.initializer}
    ops = Counter(n.op_type for n in graph.node)
    manifest = read_manifest(path)
    warning = saturation_warning(path, manifest)
    return {
        "model": str(path),
        "runtime": "onnxruntime",
        "size_bytes": path.stat().st_size,
        "opset": next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None),
        "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
        "inputs": [_value_info(v) for v in graph.input if v.name not in initializers],
        "outputs": [_value_info(v) for v in graph.output],
        "nodes": len(graph.node),
        "params": int(sum(_numel(i.dims) for i in graph.initializer)),
        "ops": dict(ops.most_common()),
        "manifest": manifest.data if manifest else None,
        **({"warning": warning} if warning else {}),
    }


def _numel(dims: Any) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n
