"""Device profiles: the built-in ones (profiles.yaml in this package), then a user's file
(``--devices FILE`` or ``$EDGEDEPLOY_DEVICES``), where a same-named profile replaces one.

Read on first use, never at import: a broken user file fails the commands that use
devices, not the others. A profile's transport must be a row of the transport table.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from edgedeploy.core.errors import ConfigError
from edgedeploy.core.yamlfile import load_yaml, validate
from edgedeploy.devices.device import Device
from edgedeploy.devices.registry import TRANSPORTS

__all__ = ["load_devices", "get_device", "builtin_devices", "default_threads", "DEVICES_ENV", "BUILTIN_PROFILES"]

BUILTIN_PROFILES = Path(__file__).with_name("profiles.yaml")
DEVICES_ENV = "EDGEDEPLOY_DEVICES"


def _one_of(names: list[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def _read_profiles(path: Path) -> list[Device]:
    data, lines = load_yaml(path, "device profile file", expect=list)
    devices = []
    for i, entry in enumerate(data):
        device = validate(Device, entry, lines, [i])
        if device.transport not in TRANSPORTS:  # read now: a transport registered at run time counts
            raise lines.error([i, "transport"], f"Input should be {_one_of(list(TRANSPORTS))} "
                                                f"(got {device.transport!r})")
        devices.append(device)
    return devices


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
