"""ONNX Runtime: the CPU execution provider, or for ``accelerator="gpu"`` CUDA/TensorRT where this onnxruntime
build has them, else the WebGPU plugin provider (onnxruntime-ep-webgpu: webgpu.py).

ONNX Runtime silently falls back to the CPU when a GPU provider cannot start (no
driver, no device); the runner checks the provider the session really uses and
refuses to report CPU figures as GPU ones.
"""

from __future__ import annotations

import logging
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgedeploy.core.cpu import int8_kernels_saturate
from edgedeploy.core.errors import EdgeDeployError, GpuUnavailableError, InputFileError
from edgedeploy.core.io_spec import ModelIO
from edgedeploy.core.manifest import read_manifest
from edgedeploy.core.onnx_external_data import OnnxParseError, check_onnx_file
from edgedeploy.core.outputs import by_name
from edgedeploy.runtimes.base import LoadOptions, Runner
from edgedeploy.runtimes.io_inference import infer_model_io
from edgedeploy.runtimes.onnxruntime.gpu import GPU_PROVIDERS, execution_providers
from edgedeploy.runtimes.onnxruntime.webgpu import WebGpuPlacement, webgpu_version

__all__ = ["OnnxRuntimeRunner", "saturation_risk", "saturation_warning"]

log = logging.getLogger(__name__)
# int8 weights within +-64 (7 bits: quantize_static's reduce_range) keep two uint8 x int8 products within int16.
_SATURATION_FREE = 64

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(float16)": "float16"}


class OnnxRuntimeRunner(Runner):
    runtime = "onnxruntime"

    def __init__(self, source: str, options: LoadOptions):
        import onnxruntime as ort

        self.source = source
        path = Path(source)
        if not path.is_file():
            raise InputFileError(f"{path}: model file not found")
        model: str | bytes = str(path)
        try:
            checked = check_onnx_file(path)  # every tensor's external data, before ONNX Runtime reads any of it
        except OnnxParseError:
            pass  # ONNX Runtime's parser (same protobuf limits) fails on it too, before reading anything: it says why
        else:
            if checked.external:
                # The checked data, read here, handed over in memory: ONNX Runtime reads some external data (a
                # constant-folded If's condition) from the working directory, where the check did not look.
                checked.load_data()
                model = checked.model.SerializeToString()
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        providers = execution_providers(options.accelerator)
        self.webgpu = WebGpuPlacement(options.gpu_fallback) if not providers else None
        try:
            self.session = self.webgpu.open(path, so, model) if self.webgpu else ort.InferenceSession(
                model, so, providers=providers)
        except EdgeDeployError:
            raise
        except Exception as exc:
            raise InputFileError(f"{path}: ONNX Runtime cannot load it ({_first_line(exc)})") from exc
        if options.accelerator == "gpu" and not self.webgpu and self.session.get_providers()[0] not in GPU_PROVIDERS:
            raise GpuUnavailableError(f"{providers[0]} could not start (no usable NVIDIA GPU or driver?): ONNX Runtime "
                                      "fell back to the CPU, so no GPU figures")
        inp, out = self.session.get_inputs(), self.session.get_outputs()
        manifest = read_manifest(path)
        if len(inp) != 1 or (len(out) != 1 and manifest is None):
            raise InputFileError(f"{path}: expected one input and one output, found {len(inp)} and {len(out)} (a model "
                                 "with several outputs needs its manifest)")
        self.threads = options.threads
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
        self._output_names = [o.name for o in out]
        self.saturation = None
        if self.session.get_providers()[0] == "CPUExecutionProvider":
            self.saturation = saturation_warning(path, manifest)

    def infer(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        return by_name(self.io.outputs, self._output_names, self.session.run(None, {self._input_name: tensor}),
                       self.source)

    def versions(self) -> dict[str, str]:
        plugin = {"onnxruntime-ep-webgpu": webgpu_version() or ""} if self.webgpu else {}
        return {"onnxruntime": metadata.version("onnxruntime"), **plugin}

    def execution(self) -> dict[str, Any]:
        if self.webgpu is not None:
            return self.webgpu.execution()
        warning = {"warning": self.saturation} if self.saturation else {}
        return {"provider": self.session.get_providers()[0], **warning}


def saturation_warning(path: Path, manifest: Any) -> str | None:
    """On a CPU whose int8 kernels saturate: why this model may compute differently here (logged as a
    warning), or None. An onnx-int8 export records the channels it gave 7-bit weights so that none saturates."""
    if manifest is not None and "weights_7bit" in (manifest.data.get("export") or {}):
        return None
    warning = saturation_risk(path) if int8_kernels_saturate() else None
    if warning:
        log.warning("%s: %s", path.name, warning)
    return warning


def saturation_risk(path: Path) -> str | None:
    """Why this int8 model may lose accuracy on this CPU's U8S8 kernels (8-bit int8 weights), or None."""
    import onnx.numpy_helper

    graph = onnx.load(str(path), load_external_data=False).graph
    # Weights stored beside the file (external data) are not read: no warning is better than a wrong one.
    widest = max((int(np.abs(onnx.numpy_helper.to_array(t).astype(np.int32)).max())
                  for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and t.dims
                  and t.data_location != onnx.TensorProto.EXTERNAL), default=0)
    if widest <= _SATURATION_FREE:
        return None
    return ("int8 weights use 8 bits and this CPU has AVX2 without VNNI: ONNX Runtime's U8S8 kernels may saturate "
            "(VPMADDUBSW), so accuracy here can be lower than on VNNI or ARM CPUs (edgedeploy's onnx-int8 export "
            "gives the layers that would saturate 7-bit weights; measure with edgedeploy eval)")


def _ends_in_softmax(path: Path, output_name: str) -> bool:
    graph = onnx.load(str(path), load_external_data=False).graph
    return any(n.op_type == "Softmax" and output_name in n.output for n in graph.node)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else exc.__class__.__name__)[:200]
