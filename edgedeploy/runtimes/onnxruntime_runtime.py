"""ONNX Runtime (CPU execution provider)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np
import onnx

from edgedeploy.errors import InputFileError
from edgedeploy.manifest import read_manifest
from edgedeploy.runtimes.base import LoadOptions, Runner
from edgedeploy.runtimes.io_inference import infer_model_io
from edgedeploy.spec import ModelIO

__all__ = ["OnnxRuntimeRunner"]

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(float16)": "float16"}


class OnnxRuntimeRunner(Runner):
    runtime = "onnxruntime"

    def __init__(self, source: str, options: LoadOptions):
        import onnxruntime as ort

        self.source = source
        path = Path(source)
        if not path.is_file():
            raise InputFileError(f"{path}: model file not found")
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise InputFileError(f"{path}: ONNX Runtime cannot load it ({_first_line(exc)})") from None
        inp, out = self.session.get_inputs(), self.session.get_outputs()
        if len(inp) != 1 or len(out) != 1:
            raise InputFileError(f"{path}: expected one input and one output, found {len(inp)} and {len(out)}")
        self.threads = options.threads
        manifest = read_manifest(path)
        shape = tuple(d if isinstance(d, int) else -1 for d in inp[0].shape)
        self.batch_size = shape[0] if shape[0] > 0 else None
        self.io: ModelIO = manifest.io if manifest else infer_model_io(
            path=path,
            input_name=inp[0].name,
            input_shape=shape,
            input_dtype=_ORT_DTYPES.get(inp[0].type, inp[0].type),
            output_name=out[0].name,
            num_outputs=int(out[0].shape[-1]),
            output_is_softmax=_ends_in_softmax(path, out[0].name),
            options=options,
        )
        self._input_name = inp[0].name

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input_name: tensor})[0]

    def versions(self) -> dict[str, str]:
        return {"onnxruntime": metadata.version("onnxruntime")}


def _ends_in_softmax(path: Path, output_name: str) -> bool:
    graph = onnx.load(str(path), load_external_data=False).graph
    return any(n.op_type == "Softmax" and output_name in n.output for n in graph.node)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:200]
