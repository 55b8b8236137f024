"""What every GPU runner shares: the adapter it ran on, the software-adapter rule, the fallback rule, and
how a GPU run is reported.

Two rules keep a CPU figure from ever appearing under a GPU label:
- a CPU-only Vulkan adapter (SwiftShader, llvmpipe) is refused unless ``EDGEDEPLOY_SOFTWARE_GPU=1``
  asks for it (tests and CI run the GPU code path on SwiftShader that way), and then the result says
  ``software: true``;
- ops the GPU has no kernel for are refused (GpuFallbackError, exit 4) unless ``--gpu-fallback`` lets
  them run on the CPU, and then the result lists them and says ``fully_accelerated: false``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from edgedeploy.core.errors import GpuFallbackError, GpuUnavailableError
from edgedeploy.core.vulkan import VulkanReport

__all__ = ["GpuAdapter", "AcceleratorStatus", "vulkan_status", "GPU_PRECISIONS", "SOFTWARE_GPU_ENV",
           "software_gpu_allowed", "check_adapter", "refuse_fallback", "gpu_execution", "adapter_from_vulkan"]

SOFTWARE_GPU_ENV = "EDGEDEPLOY_SOFTWARE_GPU"
# fp16: the accelerator's default (LiteRT's GPU accelerator computes in fp16 where the adapter has it);
# fp32: full precision enforced (LiteRT's enforce_f32). ONNX Runtime's WebGPU provider computes in the model's
# own precision, so fp16 does not apply to it.
GPU_PRECISIONS = ("fp16", "fp32")


@dataclass(frozen=True)
class GpuAdapter:
    name: str
    vendor: str
    type: str
    backend: str = "Vulkan"
    driver: str = ""

    @property
    def software(self) -> bool:
        return "cpu" in self.type.lower() or "software" in self.type.lower()

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "software": self.software}


@dataclass(frozen=True)
class AcceleratorStatus:
    """One GPU accelerator of a runtime as `edgedeploy devices` lists it: usable now, or why not."""

    accelerator: str
    runtime: str
    usable: bool
    detail: str


def vulkan_status(report: VulkanReport) -> tuple[bool, str]:
    """Whether a WebGPU-over-Vulkan accelerator has an adapter here, and which (or why none)."""
    adapter = adapter_from_vulkan(report)
    why = report.why_no_gpu()
    if adapter is None or (why and not (adapter.software and software_gpu_allowed() and not report.error)):
        return False, why or "no Vulkan adapter"
    label = f"{adapter.name} ({adapter.type}, {adapter.vendor}, driver {adapter.driver})"
    return True, f"software adapter {label}: {SOFTWARE_GPU_ENV}=1" if adapter.software else f"adapter {label}"


def software_gpu_allowed() -> bool:
    return os.environ.get(SOFTWARE_GPU_ENV, "") == "1"


def adapter_from_vulkan(report: VulkanReport) -> GpuAdapter | None:
    """The adapter Dawn picks (it prefers a discrete GPU, then an integrated one, then a CPU-only one), as the
    Vulkan loader describes it; None where there is no adapter."""
    order = {"discrete GPU": 0, "integrated GPU": 1, "virtual GPU": 2, "other": 3, "CPU": 4}
    if not report.adapters:
        return None
    best = min(report.adapters, key=lambda a: order.get(a.type, 3))
    return GpuAdapter(best.name, best.vendor, best.type, "Vulkan", f"{best.driver} {best.driver_version}".strip())


def check_adapter(adapter: GpuAdapter, accelerator: str) -> None:
    """Refuse a CPU-only adapter unless EDGEDEPLOY_SOFTWARE_GPU=1 asks for one."""
    if adapter.software and not software_gpu_allowed():
        raise GpuUnavailableError(
            f"--device gpu: {accelerator} found only a CPU-only adapter ({adapter.name}, a software rasterizer): its "
            f"figures would be CPU figures; {SOFTWARE_GPU_ENV}=1 runs on it anyway (testing), marked software")


def refuse_fallback(source: str, accelerator: str, cpu_ops: list[str]) -> None:
    ops = ", ".join(cpu_ops[:8]) + (f" and {len(cpu_ops) - 8} more" if len(cpu_ops) > 8 else "")
    raise GpuFallbackError(f"{source}: {accelerator} has no GPU kernel for {ops or 'some ops'}; --gpu-fallback runs "
                           "them on the CPU (the result then lists them and says fully_accelerated: false)")


def gpu_execution(accelerator: str, adapter: GpuAdapter, precision: str, cpu_ops: list[str]) -> dict[str, Any]:
    """A GPU runner's ``execution()``: what ran where, on which adapter, in which precision."""
    return {"accelerator": accelerator, "adapter": adapter.to_dict(), "precision": precision,
            "fully_accelerated": not cpu_ops, "cpu_ops": cpu_ops, "software": adapter.software}
