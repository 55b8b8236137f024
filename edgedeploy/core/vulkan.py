"""The Vulkan adapters this host has, as the Vulkan loader enumerates them.

LiteRT's GPU accelerator and ONNX Runtime's WebGPU provider both run WebGPU (Dawn) over
Vulkan: without ``libvulkan.so.1`` and a vendor's driver (ICD) neither has an adapter. This
module asks the loader itself, through four Vulkan calls, which adapters there are and what
they are (a discrete GPU, an integrated one, or a CPU-only software rasterizer such as
SwiftShader or llvmpipe), so ``edgedeploy devices`` can say why no GPU is usable. The calls
run in a child process (``python -m edgedeploy.core.vulkan``): a broken driver that crashes
while it is enumerated takes the child down, not edgedeploy.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["VulkanAdapter", "VulkanReport", "vulkan_adapters", "VENDORS"]

# PCI vendor ids (Vulkan's vendorID) of the GPU makers and software drivers seen in the field.
VENDORS = {0x10DE: "NVIDIA", 0x1002: "AMD", 0x8086: "Intel", 0x13B5: "ARM", 0x5143: "Qualcomm",
           0x1010: "Imagination", 0x106B: "Apple", 0x1AE0: "Google", 0x10005: "Mesa"}
DEVICE_TYPES = ("other", "integrated GPU", "discrete GPU", "virtual GPU", "CPU")
_PROBE_TIMEOUT_S = 30

# VkStructureType values used below.
_APPLICATION_INFO, _INSTANCE_CREATE_INFO = 0, 1
_PROPERTIES_2, _DRIVER_PROPERTIES = 1000059001, 1000196000
# VkPhysicalDeviceProperties is 824 bytes; its head (5 uint32 + deviceName[256]) is all that is read.
_PROPERTIES_SIZE = 824


@dataclass(frozen=True)
class VulkanAdapter:
    name: str
    vendor: str
    vendor_id: int
    device_id: int
    type: str
    driver: str
    driver_version: str
    api_version: str

    @property
    def is_cpu(self) -> bool:
        """A software rasterizer on the CPU (SwiftShader, llvmpipe): its timings are not GPU timings."""
        return self.type == "CPU"


@dataclass(frozen=True)
class VulkanReport:
    """The loader's answer: its path and the adapters, or why there is none (``error``)."""

    loader: str | None
    adapters: list[VulkanAdapter] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"loader": self.loader, "adapters": [asdict(a) for a in self.adapters], "error": self.error}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VulkanReport:
        return cls(data.get("loader"), [VulkanAdapter(**a) for a in data.get("adapters", [])], data.get("error"))

    def gpus(self) -> list[VulkanAdapter]:
        return [a for a in self.adapters if not a.is_cpu]

    def why_no_gpu(self) -> str | None:
        """None when a hardware adapter is there; else one line saying what is missing."""
        if self.loader is None:
            return "no Vulkan loader (libvulkan.so.1 not found: install libvulkan1 and the GPU vendor's driver)"
        if self.error:
            return f"the Vulkan loader failed: {self.error}"
        if not self.adapters:
            return "no Vulkan adapter (the loader found no driver: install the GPU vendor's Vulkan driver/ICD)"
        if not self.gpus():
            names = ", ".join(a.name for a in self.adapters)
            return f"only a CPU-only Vulkan adapter ({names}): a software rasterizer, not a GPU"
        return None


def vulkan_adapters(timeout_s: float = _PROBE_TIMEOUT_S) -> VulkanReport:
    """Ask the Vulkan loader, in a child process, which adapters this host has."""
    try:
        done = subprocess.run([sys.executable, "-m", "edgedeploy.core.vulkan"], capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return VulkanReport(_loader_path(), error=f"enumerating Vulkan adapters took over {timeout_s:.0f} s")
    try:
        return VulkanReport.from_dict(json.loads(done.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError, TypeError):
        how = f"exit code {done.returncode}" if done.returncode >= 0 else f"signal {-done.returncode}"
        return VulkanReport(_loader_path(), error=f"the Vulkan driver crashed while it was enumerated ({how})")


def _loader_path() -> str | None:
    return ctypes.util.find_library("vulkan")


def _version(value: int, vendor_id: int) -> str:
    if vendor_id == 0x10DE:  # NVIDIA packs its driver version as 10.8.8.6 bits
        return f"{value >> 22 & 0x3FF}.{value >> 14 & 0xFF}.{value >> 6 & 0xFF}"
    return f"{value >> 22 & 0x7F}.{value >> 12 & 0x3FF}.{value & 0xFFF}"


class _ApplicationInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_uint32), ("pNext", ctypes.c_void_p), ("pApplicationName", ctypes.c_char_p),
                ("applicationVersion", ctypes.c_uint32), ("pEngineName", ctypes.c_char_p),
                ("engineVersion", ctypes.c_uint32), ("apiVersion", ctypes.c_uint32)]


class _InstanceCreateInfo(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_uint32), ("pNext", ctypes.c_void_p), ("flags", ctypes.c_uint32),
                ("pApplicationInfo", ctypes.POINTER(_ApplicationInfo)), ("enabledLayerCount", ctypes.c_uint32),
                ("ppEnabledLayerNames", ctypes.c_void_p), ("enabledExtensionCount", ctypes.c_uint32),
                ("ppEnabledExtensionNames", ctypes.c_void_p)]


class _DriverProperties(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_uint32), ("pNext", ctypes.c_void_p), ("driverID", ctypes.c_uint32),
                ("driverName", ctypes.c_char * 256), ("driverInfo", ctypes.c_char * 256),
                ("conformanceVersion", ctypes.c_uint8 * 4)]


class _Properties2(ctypes.Structure):
    _fields_ = [("sType", ctypes.c_uint32), ("pNext", ctypes.c_void_p),
                ("properties", ctypes.c_uint64 * (_PROPERTIES_SIZE // 8))]


def _enumerate() -> VulkanReport:
    """The four Vulkan calls (run in the child process)."""
    path = _loader_path()
    if path is None:
        return VulkanReport(None)
    try:
        vk = ctypes.CDLL(path)
    except OSError as exc:
        return VulkanReport(path, error=str(exc))
    app = _ApplicationInfo(_APPLICATION_INFO, None, b"edgedeploy", 1, b"edgedeploy", 1, 1 << 22 | 1 << 12)  # 1.1
    info = _InstanceCreateInfo(_INSTANCE_CREATE_INFO, None, 0, ctypes.pointer(app), 0, None, 0, None)
    instance = ctypes.c_void_p()
    result = vk.vkCreateInstance(ctypes.byref(info), None, ctypes.byref(instance))
    if result != 0:
        # VK_ERROR_INCOMPATIBLE_DRIVER (-9): the loader found no driver at all.
        return VulkanReport(path) if result == -9 else VulkanReport(path, error=f"vkCreateInstance returned {result}")
    try:
        count = ctypes.c_uint32()
        vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), None)
        handles = (ctypes.c_void_p * count.value)()
        vk.vkEnumeratePhysicalDevices(instance, ctypes.byref(count), handles)
        vk.vkGetInstanceProcAddr.restype = ctypes.c_void_p
        address = vk.vkGetInstanceProcAddr(instance, b"vkGetPhysicalDeviceProperties2")
        properties2 = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)(address) if address else None
        return VulkanReport(path, [_describe(vk, properties2, handle) for handle in handles[: count.value]])
    finally:
        vk.vkDestroyInstance(instance, None)


def _describe(vk: Any, properties2: Any, handle: int) -> VulkanAdapter:
    raw = ctypes.create_string_buffer(_PROPERTIES_SIZE)
    vk.vkGetPhysicalDeviceProperties(ctypes.c_void_p(handle), raw)
    api, driver_version, vendor_id, device_id, kind = (int.from_bytes(raw.raw[i : i + 4], "little")
                                                       for i in range(0, 20, 4))
    name = raw.raw[20:276].split(b"\0")[0].decode(errors="replace")
    driver = ""
    if properties2 is not None:
        extra = _DriverProperties(_DRIVER_PROPERTIES, None)
        props = _Properties2(_PROPERTIES_2, ctypes.cast(ctypes.pointer(extra), ctypes.c_void_p))
        properties2(ctypes.c_void_p(handle), ctypes.byref(props))
        driver = " ".join(p for p in (extra.driverName.decode(errors="replace"),
                                      extra.driverInfo.decode(errors="replace")) if p)
    return VulkanAdapter(name=name, vendor=VENDORS.get(vendor_id, f"0x{vendor_id:04x}"), vendor_id=vendor_id,
                         device_id=device_id, type=DEVICE_TYPES[kind] if kind < len(DEVICE_TYPES) else "other",
                         driver=driver, driver_version=_version(driver_version, vendor_id),
                         api_version=_version(api, 0))


if __name__ == "__main__":
    print(json.dumps(_enumerate().to_dict()))
