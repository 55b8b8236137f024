"""The device registry: where a model runs. Profiles are data (profiles.yaml in this package),
and users add or override them with ``--devices FILE`` or ``$EDGEDEPLOY_DEVICES``.
"""

from __future__ import annotations

import os
import platform
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.yamlfile import Section, load_yaml, validate

__all__ = ["Device", "get_device", "load_devices", "builtin_devices", "default_threads", "DEVICES_ENV"]

BUILTIN_PROFILES = Path(__file__).with_name("profiles.yaml")
DEVICES_ENV = "EDGEDEPLOY_DEVICES"


class Device(Section):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str
    transport: Literal["local", "adb", "qemu", "ssh"]
    # ABI of the device's CPU (host: this machine's).
    abi: str = "host"
    # Runtimes that run there; LiteRT delegates it offers.
    runtimes: list[str] = Field(min_length=1)
    delegates: list[str] = []
    # local: "gpu" selects the host's GPU (CUDA/TensorRT EPs, OpenVINO GPU).
    accelerator: Literal["cpu", "gpu"] = "cpu"
    default_threads_: int | None = Field(None, alias="default_threads", ge=1)
    # adb: the attached phone must report this ro.product.model; soc is informational.
    model: str | None = None
    soc: str | None = None
    # ssh: where the board is (user@host, or a Host from ~/.ssh/config).
    host: str | None = Field(None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.@:-]*$")
    # Latency measured there is not device latency (emulation): reported flagged, kept out of tables.
    emulated: bool = False

    def default_threads(self) -> int:
        return self.default_threads_ or os.cpu_count() or 1

    def describe_host(self) -> str:
        """This host's CPU, with the instruction-set features int8 speed depends on (int8 vs
        fp32 ratios are only comparable between machines that share them)."""
        model, features = _cpu_info()
        int8 = [f for f in _INT8_FEATURES if f in features]
        return (f"{platform.machine()} {model or platform.processor() or platform.system()}, "
                f"{os.cpu_count()} logical CPUs, int8 features: {' '.join(int8) or 'none known'}")

    @property
    def in_process(self) -> bool:
        return self.transport == "local"


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


def _read_profiles(path: Path) -> list[Device]:
    data, lines = load_yaml(path, "device profile file", expect=list)
    return [validate(Device, entry, lines, [i]) for i, entry in enumerate(data)]


def load_devices(extra: str | None = None) -> dict[str, Device]:
    """The built-in profiles, then ``extra`` (or $EDGEDEPLOY_DEVICES): a same-named profile replaces one."""
    return _load(extra or os.environ.get(DEVICES_ENV) or None)


@cache
def _load(extra: str | None) -> dict[str, Device]:
    devices = {d.name: d for d in _read_profiles(BUILTIN_PROFILES)}
    if extra:
        devices.update({d.name: d for d in _read_profiles(Path(extra))})
    return devices


def get_device(name: str, extra: str | None = None) -> Device:
    devices = load_devices(extra)
    try:
        return devices[name]
    except KeyError:
        raise ConfigError(f"unknown device {name!r}; known devices: {', '.join(devices)}") from None


def builtin_devices() -> dict[str, Device]:
    """The profiles shipped with edgedeploy (no user file read)."""
    return _load(None)


def default_threads() -> int:
    """Threads for work on this host's CPU (the built-in ``cpu`` profile's; a user's profile
    file is not read, so a broken one cannot stop commands that use no device)."""
    return builtin_devices()["cpu"].default_threads()
