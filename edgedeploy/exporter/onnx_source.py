"""ONNX in: a model trained elsewhere, exported through the ONNX-based routes (``export --from model.onnx``).

The file is read without its external data first, and every tensor's external data (subgraphs' and
attributes' too) is checked to name a regular file inside the model's folder and a byte range inside it
before anything is read (core/onnx_external_data.py: a crafted model must not make edgedeploy read
/etc/passwd, ../secrets or a FIFO). The graph is then normalized, not changed: its input and
output renamed to the pipeline's names and the input's shape fixed (batch 1, or dynamic with
``--dynamic-batch``; dynamic spatial sizes need ``--input-shape``), so the rest of the pipeline runs
exactly as for a PyTorch model. Parity compares the artifact with ONNX Runtime running this normalized
graph, which computes what the original does at that shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edgedeploy.core.jsonfile import json_text
from edgedeploy.core.errors import ConfigError, InputFileError
from edgedeploy.core.io_spec import INPUT_NAME, OUTPUT_NAME
from edgedeploy.core.onnx_external_data import check_onnx_file
from edgedeploy.exporter.converters.onnx import BATCH_DIM

__all__ = ["OnnxInput", "read_onnx_input", "normalized_onnx", "onnx_fingerprint"]


@dataclass(frozen=True)
class OnnxInput:
    """An ONNX model normalized for the pipeline."""

    path: Path
    resolution: int
    num_classes: int
    params: int


def onnx_fingerprint(path: Path) -> str:
    """An ONNX file's content with its external data files (every tensor's checked first, subgraphs' too)."""
    from edgedeploy.core.cache import content_key
    from edgedeploy.core.hashing import sha256_file

    checked = check_onnx_file(path)
    return content_key(sha256_file(path), *(sha256_file(file) for file in checked.data_files))


def read_onnx_input(path: Path, out: Path, input_size: int | None, dynamic_batch: bool) -> OnnxInput:
    """Check ``path`` and write its normalized graph to ``out``."""
    checked = check_onnx_file(path)
    model = checked.model
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise InputFileError(f"{path}: expected one input and one output, found {len(inputs)} and {len(graph.output)}")
    tensor_type = inputs[0].type.tensor_type
    if tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise InputFileError(f"{path}: input {inputs[0].name!r} is {onnx.TensorProto.DataType.Name(tensor_type.elem_type)}"
                             "; ONNX in takes a float32 NCHW image input")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor_type.shape.dim]
    resolution = _resolution(path, inputs[0].name, dims, input_size)
    checked.load_data()
    _rename(graph, inputs[0].name, INPUT_NAME)
    _rename(graph, graph.output[0].name, OUTPUT_NAME)
    shape = graph.input[[i.name for i in graph.input].index(INPUT_NAME)].type.tensor_type.shape
    for dim, value in zip(shape.dim, (None if dynamic_batch else 1, 3, resolution, resolution)):
        dim.Clear()
        if value is None:
            dim.dim_param = BATCH_DIM
        else:
            dim.dim_value = value
    for dim in graph.output[0].type.tensor_type.shape.dim:
        dim.Clear()  # re-inferred by onnxsim from the fixed input
    del graph.value_info[:]
    onnx.save(model, str(out))
    num_classes = _classes(path, out, resolution)
    params = int(sum(np.prod(t.dims) for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT))
    return OnnxInput(out, resolution, num_classes, params)


def normalized_onnx(path: Path, input_size: int | None) -> OnnxInput:
    """``path`` normalized (batch 1) once per content and size, kept in the cache: recipes load it as their
    reference model in every process (Ray workers included)."""
    import json

    from edgedeploy.core.artifacts import atomic_path
    from edgedeploy.core.cache import cache_dir, content_key

    folder = cache_dir("onnx-in")
    key = content_key(onnx_fingerprint(path), input_size)
    model, record = folder / f"{key}.onnx", folder / f"{key}.json"
    if model.is_file() and record.is_file():
        return OnnxInput(model, **json.loads(record.read_text()))
    with atomic_path(model) as tmp:
        source = read_onnx_input(path, tmp, input_size, dynamic_batch=False)
    with atomic_path(record) as tmp:
        tmp.write_text(json_text({"resolution": source.resolution, "num_classes": source.num_classes,
                                   "params": source.params}))
    return OnnxInput(model, source.resolution, source.num_classes, source.params)


def _resolution(path: Path, name: str, dims: list[int | None], input_size: int | None) -> int:
    if len(dims) != 4 or dims[1] != 3:
        raise InputFileError(f"{path}: input {name!r} has shape {['?' if d is None else d for d in dims]}; ONNX in "
                             "takes an NCHW RGB image (N, 3, H, W)")
    height, width = dims[2], dims[3]
    if height is None or width is None:
        if input_size is None:
            raise ConfigError(f"{path}: input {name!r} has dynamic spatial dims: pass --input-shape 1,3,H,W")
        return input_size
    if height != width:
        raise InputFileError(f"{path}: input {name!r} is {height}x{width}; edgedeploy takes square images")
    if input_size is not None and input_size != height:
        raise ConfigError(f"{path}: the input is fixed at {height}x{width}; --input-shape asks for {input_size}")
    return height


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    if old == new:
        return
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.name == old:
            value.name = new
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]


def _classes(path: Path, normalized: Path, resolution: int) -> int:
    """The class count, read from one ONNX Runtime run (the output shape may be symbolic in the graph)."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(normalized), providers=["CPUExecutionProvider"])
        out = session.run(None, {INPUT_NAME: np.zeros((1, 3, resolution, resolution), np.float32)})[0]
    except Exception as exc:
        raise InputFileError(f"{path}: ONNX Runtime cannot run it at 1x3x{resolution}x{resolution} "
                             f"({str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__})") from None
    if out.ndim != 2:
        raise InputFileError(f"{path}: output shape {list(out.shape)}; ONNX in takes classifiers (1, classes)")
    return int(out.shape[1])
