"""LiteRT's GPU accelerator (``libLiteRtWebGpuAccelerator.so`` in ai-edge-litert: ML Drift on WebGPU over
Vulkan, the accelerator LiteRT uses on Android), through the CompiledModel API.

The accelerator says on its log which adapter it selected and which ops it cannot run; both are read
from there (the Python API exposes only ``is_fully_accelerated()``). Without ``--gpu-fallback`` the model
is compiled for the GPU alone, so an op without a GPU kernel fails the compilation instead of running on
the CPU unnoticed.
"""

from __future__ import annotations

import atexit
import os
import re
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.core.errors import GpuUnavailableError, InputFileError
from edgedeploy.core.logcapture import captured_output, log_tail
from edgedeploy.core.vulkan import VulkanReport, vulkan_adapters
from edgedeploy.runtimes.gpu import (
    AcceleratorStatus,
    GpuAdapter,
    check_adapter,
    gpu_execution,
    refuse_fallback,
    vulkan_status,
)

__all__ = ["LiteRTGpuModel", "ACCELERATOR", "parse_adapter", "parse_cpu_ops", "accelerator_status"]

ACCELERATOR = "LiteRT GPU accelerator (WebGPU)"
# Dawn's line: "Selected adapter: NVIDIA H100, arch=hopper, vendor=nvidia, backend=Vulkan, adapterType=DiscreteGPU"
_SELECTED = re.compile(r"Selected adapter: (?P<name>.*?), arch=(?P<arch>[^,]*), vendor=(?P<vendor>[^,]*), "
                       r"backend=(?P<backend>[^,]*), adapterType=(?P<type>.*)$", re.MULTILINE)
# "ERROR: Following operations are not supported by GPU delegate:" then "<OP>: <why>" lines, then
# "63 operations will run on the GPU, and the remaining 1 operations will run on the CPU."
_UNSUPPORTED = re.compile(r"Following operations are not supported by GPU delegate:\n(?P<ops>(?:.+\n)*?)"
                          r"\d+ operations will run on the GPU", re.MULTILINE)


def accelerator_status(report: VulkanReport) -> list[AcceleratorStatus]:
    """Whether LiteRT's GPU accelerator is installed and has a Vulkan adapter here."""
    import ai_edge_litert

    library = Path(ai_edge_litert.__file__).parent / "libLiteRtWebGpuAccelerator.so"
    if not library.is_file():
        return [AcceleratorStatus(ACCELERATOR, "litert", False, f"this ai-edge-litert has no {library.name}")]
    return [AcceleratorStatus(ACCELERATOR, "litert", *vulkan_status(report))]


def parse_adapter(log: str) -> GpuAdapter | None:
    found = _SELECTED.search(log)
    if found is None:
        return None
    return GpuAdapter(found["name"].strip(), found["vendor"].strip(), found["type"].strip(), found["backend"].strip(),
                      found["arch"].strip())


def parse_cpu_ops(log: str) -> list[str]:
    """The ops the accelerator cannot run, as it names them (``CUSTOM TFLite_Detection_PostProcess``)."""
    found = _UNSUPPORTED.search(log)
    if found is None:
        return []
    return sorted({line.split(":")[0].strip() for line in found["ops"].splitlines() if line.strip()})


def _silence_stderr_at_exit() -> None:
    """The first buffer write also makes a process-wide LiteRT environment, which logs each accelerator it
    destroys on stderr at process exit, with no way to turn its logger down: once the program is over, stderr goes
    to /dev/null."""
    if not _exit_hook:
        _exit_hook.append(True)
        atexit.register(lambda: os.dup2(os.open(os.devnull, os.O_WRONLY), 2))


_exit_hook: list[bool] = []


def _release_quietly(model: Any, buffers: list[Any]) -> None:
    """Free the compiled model with its environment's goodbye lines (one per accelerator) sent to a log."""
    with tempfile.TemporaryDirectory() as tmp, captured_output(Path(tmp) / "release.log"):
        for buffer in buffers:
            buffer.destroy()
        environment = model.environment
        model.close()
        environment.close()


class LiteRTGpuModel:
    """A .tflite compiled for the GPU; ``infer`` takes and returns the signature's tensors by name."""

    def __init__(self, path: Path, precision: str, fallback: bool):
        from ai_edge_litert.compiled_model import CompiledModel, HardwareAccelerator
        from ai_edge_litert.options import GpuOptions, Options

        accelerators = HardwareAccelerator.GPU | (HardwareAccelerator.CPU if fallback else HardwareAccelerator(0))
        options = Options(hardware_accelerators=accelerators, gpu_options=GpuOptions(enforce_f32=precision == "fp32"))
        with tempfile.TemporaryDirectory() as tmp:
            log_path = Path(tmp) / "litert-gpu.log"
            error = None
            with captured_output(log_path):
                try:
                    self.model = CompiledModel.from_file(str(path), options=options)
                    self._open_buffers()
                except (RuntimeError, ValueError) as exc:
                    # Kept as text: the exception's frames hold LiteRT's environment, whose goodbye lines belong
                    # in this log, so it is freed here.
                    error = " ".join(str(exc).split()) or exc.__class__.__name__
            log = log_path.read_text(errors="replace")
            tail = log_tail(log_path)
        adapter = parse_adapter(log)
        if adapter is None:
            why = vulkan_adapters().why_no_gpu() or "Dawn accepted none of the Vulkan adapters"
            raise GpuUnavailableError(f"--device gpu: {ACCELERATOR} found no adapter: {why}")
        check_adapter(adapter, ACCELERATOR)
        self.cpu_ops = parse_cpu_ops(log)
        if error is not None:
            if "not accelerated" in error or self.cpu_ops:
                refuse_fallback(str(path), ACCELERATOR, self.cpu_ops)
            raise InputFileError(f"{path}: {ACCELERATOR} cannot compile it ({(error or tail)[-200:]})")
        if not fallback and not self.model.is_fully_accelerated():
            refuse_fallback(str(path), ACCELERATOR, self.cpu_ops)
        self.adapter, self.precision = adapter, precision

    def _open_buffers(self) -> None:
        signature = next(iter(self.model.get_signature_list()))
        self._inputs = self.model.get_input_tensor_details(signature)
        self._outputs = self.model.get_output_tensor_details(signature)
        self._in_buffers = self.model.create_input_buffers(0)
        self._out_buffers = self.model.create_output_buffers(0)
        # The first write sets up LiteRT's buffer environment, which says so on stderr: done here, into the log.
        detail = next(iter(self._inputs.values()))
        self.infer(np.zeros(detail["shape"], dtype=detail["dtype"]))
        weakref.finalize(self, _release_quietly, self.model, [*self._in_buffers, *self._out_buffers])
        _silence_stderr_at_exit()

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Run one input; reading the outputs waits for the GPU, so a timed call includes the whole run."""
        self._in_buffers[0].write(np.ascontiguousarray(tensor))
        self.model.run_by_index(0, self._in_buffers, self._out_buffers)
        return [buffer.read(int(np.prod(detail["shape"])), detail["dtype"]).reshape(detail["shape"])
                for buffer, detail in zip(self._out_buffers, self._outputs.values())]

    def execution(self) -> dict[str, Any]:
        precision = "fp32 (enforced)" if self.precision == "fp32" else "fp16 where the adapter has it (the default)"
        return gpu_execution(ACCELERATOR, self.adapter, precision, self.cpu_ops)
