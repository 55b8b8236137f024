"""Is a device reachable right now, and if not, why not (`edgedeploy devices`)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from edgedeploy.core.errors import EdgeDeployError
from edgedeploy.devices import Device

__all__ = ["Reachability", "probe", "gpu_status"]


@dataclass(frozen=True)
class Reachability:
    reachable: bool
    detail: str


def gpu_status() -> Reachability:
    """What this host offers for --device gpu: ONNX Runtime GPU providers, OpenVINO GPU plugin."""
    import onnxruntime as ort

    from edgedeploy.backends.onnxruntime.runner import GPU_PROVIDERS

    found, missing = [], []
    providers = [p for p in GPU_PROVIDERS if p in ort.get_available_providers()]
    (found if providers else missing).append(
        f"onnxruntime: {', '.join(providers)}" if providers else "onnxruntime has no CUDA/TensorRT provider")
    try:
        import openvino as ov

        gpus = [d for d in ov.Core().available_devices if d.split(".")[0] == "GPU"]
        (found if gpus else missing).append(f"OpenVINO: {', '.join(gpus)}" if gpus else "OpenVINO sees no GPU")
    except ImportError:
        missing.append("OpenVINO not installed")
    if shutil.which("nvidia-smi") is None:
        missing.append("no NVIDIA driver (nvidia-smi not found)")
    if found:
        return Reachability(True, "; ".join(found))
    return Reachability(False, "no GPU: " + "; ".join(missing))


def probe(device: Device) -> Reachability:
    """Cheap checks only: a listing (adb), one command (ssh), files on disk (qemu)."""
    try:
        if device.transport == "local":
            return gpu_status() if device.accelerator == "gpu" else Reachability(True, device.describe_host())
        if device.transport == "adb":
            from edgedeploy.devices.transports import AdbTransport

            transport = AdbTransport.connect(device.model)
            info = transport.describe()
            return Reachability(True, f"{info['model']} ({info['serial']}), {info['abi']}, Android {info['android']}")
        if device.transport == "qemu":
            from edgedeploy.devices.emulator import emulator_status

            return emulator_status()
        from edgedeploy.devices.remote import connect

        info = connect(device).describe()
        return Reachability(True, f"{info['host']}, {info['abi']}")
    except EdgeDeployError as exc:
        return Reachability(False, str(exc))
