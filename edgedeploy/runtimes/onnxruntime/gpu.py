"""ONNX Runtime's GPU providers: CUDA/TensorRT by name where an onnxruntime-gpu build has them, else the WebGPU
plugin provider (webgpu.py); what this host offers of them (`edgedeploy devices`)."""

from __future__ import annotations

from edgedeploy.core.vulkan import VulkanReport
from edgedeploy.runtimes.gpu import AcceleratorStatus, vulkan_status
from edgedeploy.runtimes.onnxruntime.webgpu import ACCELERATOR, webgpu_version

__all__ = ["GPU_PROVIDERS", "execution_providers", "accelerator_status"]

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def execution_providers(accelerator: str) -> list[str]:
    """The providers to ask for by name: the CUDA/TensorRT ones this onnxruntime build has, then the CPU; [] for
    the GPU when this build has neither (the WebGPU plugin provider is added by device: webgpu.py)."""
    import onnxruntime as ort

    if accelerator != "gpu":
        return ["CPUExecutionProvider"]
    gpu = [p for p in GPU_PROVIDERS if p in ort.get_available_providers()]
    return [*gpu, "CPUExecutionProvider"] if gpu else []


def accelerator_status(report: VulkanReport) -> list[AcceleratorStatus]:
    """ONNX Runtime's GPU providers here: CUDA/TensorRT (onnxruntime-gpu) and the WebGPU plugin."""
    import onnxruntime as ort

    cuda = [p for p in GPU_PROVIDERS if p in ort.get_available_providers()]
    rows = [AcceleratorStatus("ONNX Runtime CUDA/TensorRT", "onnxruntime", bool(cuda),
                              ", ".join(cuda) if cuda else "this onnxruntime build has no CUDA/TensorRT provider "
                                                          "(onnxruntime-gpu)")]
    if webgpu_version() is None:
        return [*rows, AcceleratorStatus(ACCELERATOR, "onnxruntime", False,
                                         "onnxruntime-ep-webgpu is not installed (pip install 'edgedeploy[gpu]')")]
    return [*rows, AcceleratorStatus(ACCELERATOR, "onnxruntime", *vulkan_status(report))]
