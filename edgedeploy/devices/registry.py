"""The transport table: which :class:`DeviceBackend` serves a device profile's ``transport``.

A new transport is one DeviceBackend subclass plus one row here (or, from a plugin,
``register_transport("name", Backend)``); profiles are checked against this table when
they are loaded, so registering is all it takes for `--devices FILE` to accept the name.
"""

from __future__ import annotations

from edgedeploy.core.errors import ConfigError, EdgeDeployError
from edgedeploy.devices.adb import AdbBackend
from edgedeploy.devices.backend import DeviceBackend, Reachability
from edgedeploy.devices.device import Device
from edgedeploy.devices.local import LocalBackend
from edgedeploy.devices.qemu.backend import QemuBackend
from edgedeploy.devices.ssh import SshBackend

__all__ = ["TRANSPORTS", "register_transport", "transport_names", "backend_for", "probe"]

TRANSPORTS: dict[str, type[DeviceBackend]] = {
    "local": LocalBackend,  # this host, in this process (cpu, gpu)
    "adb": AdbBackend,      # an Android phone, through the adb client
    "qemu": QemuBackend,    # LiteRT's aarch64 build under qemu user-mode emulation (arm64-emu)
    "ssh": SshBackend,      # a Linux board, over OpenSSH
}


def register_transport(name: str, backend: type[DeviceBackend]) -> type[DeviceBackend]:
    """Add a transport row (a plugin's one call); the name must be new."""
    if name in TRANSPORTS:
        raise ConfigError(f"transport {name!r} is already registered")
    if not (isinstance(backend, type) and issubclass(backend, DeviceBackend)):
        raise TypeError(f"transport {name}: {backend!r} is not a DeviceBackend subclass")
    TRANSPORTS[name] = backend
    return backend


def transport_names() -> list[str]:
    return list(TRANSPORTS)


def backend_for(device: Device) -> DeviceBackend:
    """The backend that serves ``device`` (it contacts nothing until asked to)."""
    try:
        backend = TRANSPORTS[device.transport]
    except KeyError:
        raise ConfigError(f"device {device.name}: unknown transport {device.transport!r}; "
                          f"registered transports: {', '.join(TRANSPORTS)}") from None
    return backend(device)


def probe(device: Device) -> Reachability:
    """Whether ``device`` is usable now: one device's failing probe (a plugin's, a missing tool)
    says why in its own row instead of ending the listing of every device."""
    try:
        return backend_for(device).probe()
    except EdgeDeployError as exc:
        return Reachability(False, " ".join(str(exc).split()))
