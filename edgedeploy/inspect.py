"""Describe a model: architecture figures for PyTorch weights, graph figures for artifacts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from edgedeploy.errors import InputFileError
from edgedeploy.manifest import read_manifest
from edgedeploy.runtimes.base import LoadOptions

__all__ = ["inspect_torch", "inspect_onnx", "inspect_tflite", "inspect_openvino", "tflite_graph_summary",
           "openvino_quantized_convolutions", "feeds_from"]


def inspect_torch(model: str, options: LoadOptions) -> dict[str, Any]:
    from edgedeploy.models.profile import profile_model
    from edgedeploy.runtimes.torch_runtime import TorchRunner

    runner = TorchRunner(model, options)
    config = runner.model.config
    complexity = profile_model(runner.model, config.resolution)
    return {
        "model": model,
        "runtime": "torch",
        "arch": "mobilenet_v2",
        "width": config.width,
        "resolution": config.resolution,
        "num_classes": config.num_classes,
        "params": complexity.params,
        "macs": complexity.macs,
        "weights_sha256": runner.weights.sha256 if runner.weights else None,
        "preprocessing": runner.io.preprocessing.to_dict(),
    }


def _value_info(v: Any) -> dict[str, Any]:
    import onnx

    t = v.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
    return {"name": v.name, "shape": dims, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name}


def inspect_onnx(model: str, options: LoadOptions) -> dict[str, Any]:
    import onnx

    path = Path(model)
    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise InputFileError(f"{path}: not a valid ONNX model ({exc.__class__.__name__})") from None
    graph = proto.graph
    initializers = {i.name for i in graph.initializer}
    ops = Counter(n.op_type for n in graph.node)
    manifest = read_manifest(path)
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
    }


def _numel(dims: Any) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def tflite_graph_summary(path: str | Path) -> dict[str, Any]:
    """Op histogram, tensor dtypes and the ops that compute in float (a fully-integer model has none)."""
    import numpy as np

    from edgedeploy.runtimes.litert_runtime import graph_ops

    ops, tensor_list = graph_ops(Path(path))
    tensors = {t["index"]: t for t in tensor_list}
    float_ops = []
    for op in ops:
        indices = [i for i in (*op["inputs"], *op["outputs"]) if i >= 0]
        if any(np.dtype(tensors[i]["dtype"]).kind == "f" for i in indices if i in tensors):
            float_ops.append(op["op_name"])
    dtypes = Counter(np.dtype(t["dtype"]).name for t in tensors.values())
    return {
        "ops": dict(Counter(op["op_name"] for op in ops).most_common()),
        "tensor_dtypes": dict(dtypes.most_common()),
        "float_ops": float_ops,
        "integer_only": not float_ops,
    }


def inspect_tflite(model: str, options: LoadOptions) -> dict[str, Any]:
    from edgedeploy.runtimes.litert_runtime import open_interpreter

    path = Path(model)
    interpreter = open_interpreter(path)

    def describe(d: dict[str, Any]) -> dict[str, Any]:
        scale, zero_point = d["quantization"]
        q = {"scale": float(scale), "zero_point": int(zero_point)} if scale else None
        return {"name": d["name"], "shape": [int(x) for x in d["shape"]], "dtype": d["dtype"].__name__, "quantization": q}

    summary = tflite_graph_summary(path)
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


def inspect_openvino(model: str, options: LoadOptions) -> dict[str, Any]:
    """IR facts: IO, op histogram, and how many convolutions are preceded by FakeQuantize (int8)."""
    from edgedeploy.runtimes.openvino_runtime import read_ir

    path = Path(model)
    ir = read_ir(path)
    ops = ir.get_ordered_ops()
    histogram = Counter(op.get_type_name() for op in ops)

    def describe(port: Any) -> dict[str, Any]:
        shape = [d.get_length() if d.is_static else "?" for d in port.get_partial_shape()]
        return {"name": port.get_any_name(), "shape": shape, "dtype": port.get_element_type().get_type_name()}

    quantized, total = openvino_quantized_convolutions(ir)
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


def openvino_quantized_convolutions(model: Any) -> tuple[int, int]:
    """(convolutions fed by a FakeQuantize, all convolutions) in an OpenVINO model."""
    convs = [op for op in model.get_ordered_ops() if op.get_type_name() in ("Convolution", "GroupConvolution")]
    quantized = sum(
        1 for op in convs
        if any(feeds_from(op.input_value(i).get_node(), "FakeQuantize") for i in range(op.get_input_size()))
    )
    return quantized, len(convs)


def feeds_from(node: Any, op_type: str, depth: int = 3) -> bool:
    """Whether ``node`` is, or is fed through a few Convert/Reshape steps by, an op of ``op_type``."""
    if node.get_type_name() == op_type:
        return True
    if depth == 0 or node.get_type_name() not in ("Convert", "Reshape", "Multiply", "Subtract"):
        return False
    return any(feeds_from(node.input_value(i).get_node(), op_type, depth - 1) for i in range(node.get_input_size()))
