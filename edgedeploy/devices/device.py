"""A device profile: where a model runs and what runs there (data, from profiles.yaml or a user's file).

The profile names its transport; how that transport reaches the device is the business of
its :class:`~edgedeploy.devices.driver.DeviceDriver` (``registry.TRANSPORTS``). The
profile only checks the shape of the name here: which transports exist is known to the
registry, and profiles are checked against it when they are loaded (``profiles.py``).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Literal

from pydantic import Field

from edgedeploy.core.yamlfile import Section
from edgedeploy.runtimes import runtime_names

__all__ = ["Device"]


class Device(Section):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str
    # A row of registry.TRANSPORTS: local, qemu, adb, ssh, or one a plugin registered.
    transport: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    # ABI of the device's CPU (host: this machine's).
    abi: str = "host"
    # Runtimes that run there ("*": every registered runtime, for this host's CPU); LiteRT delegates it offers.
    runtimes: list[str] = Field(min_length=1)
    delegates: list[str] = []
    # local: "gpu" selects the host's GPU (LiteRT GPU accelerator, ONNX Runtime WebGPU or CUDA/TensorRT, OpenVINO GPU).
    accelerator: Literal["cpu", "gpu"] = "cpu"
    default_threads_: int | None = Field(None, alias="default_threads", ge=1)
    # adb: the attached phone must report this ro.product.model; soc is informational.
    model: str | None = None
    soc: str | None = None
    # ssh: where the board is (user@host, or a Host from ~/.ssh/config).
    host: str | None = Field(None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.@:-]*$")
    # Latency measured there is not device latency (emulation): reported flagged, kept out of tables.
    emulated: bool = False

    @property
    def runtime_names(self) -> list[str]:
        """The runtimes that run here, "*" expanded to the runtime registry's rows."""
        if "*" in self.runtimes:
            return runtime_names()
        return list(self.runtimes)

    def runs(self, runtime: str) -> bool:
        return runtime in self.runtime_names

    def default_threads(self) -> int:
        return self.default_threads_ or os.cpu_count() or 1

    def describe_host(self) -> str:
        """This host's CPU, with the instruction-set features int8 speed depends on (int8 vs
        fp32 ratios are only comparable between machines that share them)."""
        model, features = _cpu_info()
        int8 = [f for f in _INT8_FEATURES if f in features]
        return (f"{platform.machine()} {model or platform.processor() or platform.system()}, "
                f"{os.cpu_count()} logical CPUs, int8 features: {' '.join(int8) or 'none known'}")


# x86: AVX2 baseline, VNNI (one-instruction int8 dot products), AMX; ARM: dot product, i8mm.
_INT8_FEATURES = ("avx2", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")


def _cpu_info() -> tuple[str | None, set[str]]:
    """(CPU model name, feature flags) from /proc/cpuinfo; (None, empty) where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None, set()
    model, features = None, set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model is None:
            model = value.strip()
        elif key in ("flags", "Features"):
            features.update(value.split())
    return model, features
