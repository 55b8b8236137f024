"""OpenVINO runtime: the CPU plugin with a latency hint and an explicit inference precision.

The CPU plugin silently runs fp32 IR in bf16 on CPUs with AMX/AVX512-BF16 unless
told otherwise. Here the precision is always requested explicitly (``f32`` by
default) and the precision the compiled model actually uses is reported.
"""

from __future__ import annotations

import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import GpuUnavailableError, InputFileError
from edgedeploy.core.io_spec import ModelIO
from edgedeploy.core.logcapture import captured_output
from edgedeploy.core.manifest import read_manifest
from edgedeploy.core.vulkan import VulkanReport
from edgedeploy.core.outputs import by_name
from edgedeploy.runtimes.base import LoadOptions, Runner
from edgedeploy.runtimes.gpu import AcceleratorStatus
from edgedeploy.runtimes.io_inference import infer_model_io

__all__ = ["OpenVINORunner", "read_ir"]


def read_ir(path: Path) -> Any:
    """Read an IR (.xml + .bin beside it); InputFileError for a missing or corrupt pair."""
    import openvino as ov

    if not path.is_file():
        raise InputFileError(f"{path}: model file not found")
    if path.suffix == ".xml" and not path.with_suffix(".bin").is_file():
        raise InputFileError(f"{path}: weights file {path.with_suffix('.bin').name} is missing beside it")
    # On a file that is not IR OpenVINO tries its other frontends, and TensorFlow's logs from C++ to stderr.
    try:
        with tempfile.TemporaryDirectory() as tmp, captured_output(Path(tmp) / "openvino.log"):
            return ov.Core().read_model(str(path))
    except Exception as exc:
        text = " ".join(str(exc).split())
        raise InputFileError(f"{path}: OpenVINO cannot read it ({text[:160] or exc.__class__.__name__})") from exc


def accelerator_status(report: VulkanReport) -> list[AcceleratorStatus]:
    """OpenVINO's GPU plugin (Intel GPUs, through their OpenCL compute runtime: Vulkan is not involved)."""
    import openvino as ov

    devices = ov.Core().available_devices
    gpus = [d for d in devices if d.split(".")[0] == "GPU"]
    return [AcceleratorStatus("OpenVINO GPU plugin", "openvino", bool(gpus),
                              ", ".join(gpus) if gpus else f"OpenVINO sees no Intel GPU (its devices: {', '.join(devices)})")]


class OpenVINORunner(Runner):
    runtime = "openvino"

    def __init__(self, source: str, options: LoadOptions):
        import openvino as ov

        self.source = source
        path = Path(source)
        model = read_ir(path)
        manifest = read_manifest(path)
        if len(model.inputs) != 1 or (len(model.outputs) != 1 and manifest is None):
            raise InputFileError(f"{path}: expected one input and one output, found {len(model.inputs)} and "
                                 f"{len(model.outputs)} (a model with several outputs needs its manifest)")
        inp, out = model.inputs[0], model.outputs[0]
        self._output_names = [o.get_any_name() for o in model.outputs]
        shape = tuple(d.get_length() if d.is_static else -1 for d in inp.get_partial_shape())
        self.batch_size = shape[0] if shape and shape[0] > 0 else None
        self.io: ModelIO = manifest.io if manifest else infer_model_io(
            path=path,
            input_name=inp.get_any_name(),
            input_shape=shape,
            input_dtype=np.dtype(inp.get_element_type().to_dtype()).name,
            output_name=out.get_any_name(),
            num_outputs=int(out.get_partial_shape()[-1].get_length()),
            output_is_softmax=any(op.get_type_name() == "Softmax" for op in model.get_ordered_ops()[-3:]),
            options=options,
        )
        if manifest and tuple(self.io.input.shape) != shape:
            raise InputFileError(f"{path}: manifest input spec does not match the model's input "
                                 f"({list(self.io.input.shape)} vs {list(shape)})")
        core = ov.Core()
        self.plugin = "GPU" if options.accelerator == "gpu" else "CPU"
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if self.plugin == "CPU":
            config["INFERENCE_NUM_THREADS"] = options.threads
        elif not any(d.split(".")[0] == "GPU" for d in core.available_devices):
            raise GpuUnavailableError(f"--device gpu: OpenVINO sees no GPU (its devices: {', '.join(core.available_devices)}); "
                                  "the GPU plugin needs an Intel GPU and its compute runtime")
        if options.inference_precision != "auto":
            config["INFERENCE_PRECISION_HINT"] = options.inference_precision
        try:
            self.compiled = core.compile_model(model, self.plugin, config)
        except Exception as exc:
            raise InputFileError(f"{path}: the {self.plugin} plugin cannot compile it "
                                 f"({' '.join(str(exc).split())[:160]})") from exc
        self.request = self.compiled.create_infer_request()
        self.threads = options.threads

    def infer(self, tensor: np.ndarray) -> dict[str, np.ndarray]:
        # share_inputs: no copy of the input per call (benchmark_app does none either).
        results = self.request.infer({0: tensor}, share_inputs=True)
        return by_name(self.io.outputs, self._output_names,
                       [results[i].copy() for i in range(len(self._output_names))], self.source)

    @property
    def size_bytes(self) -> int | None:
        path = Path(self.source)
        return sum(p.stat().st_size for p in (path, path.with_suffix(".bin")) if p.is_file())

    def execution(self) -> dict[str, Any]:
        precision = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        out = {
            "device": f"{self.plugin} plugin",
            "inference_precision": getattr(precision, "get_type_name", lambda: str(precision))(),
            "performance_hint": str(self.compiled.get_property("PERFORMANCE_HINT")),
        }
        if self.plugin == "CPU":
            out["threads"] = int(self.compiled.get_property("INFERENCE_NUM_THREADS"))
        return out

    def versions(self) -> dict[str, str]:
        return {"openvino": metadata.version("openvino")}
