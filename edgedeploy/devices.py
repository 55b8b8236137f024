"""The device registry: where a benchmark runs. One row per device."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass

from edgedeploy.errors import ConfigError

__all__ = ["Device", "DEVICES", "get_device"]


@dataclass(frozen=True)
class Device:
    name: str
    description: str
    # Runtimes that can run on this device; None = every registered runtime.
    runtimes: tuple[str, ...] | None = None

    def default_threads(self) -> int:
        return os.cpu_count() or 1

    def describe_host(self) -> str:
        return f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} logical CPUs"


DEVICES: dict[str, Device] = {
    d.name: d
    for d in (
        Device("cpu", "this host's CPU, in-process"),
    )
}


def get_device(name: str) -> Device:
    try:
        return DEVICES[name]
    except KeyError:
        raise ConfigError(f"unknown device {name!r}; known devices: {', '.join(DEVICES)}") from None
