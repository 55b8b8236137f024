"""The transport table: which :class:`DeviceDriver` serves a device profile's ``transport``.

A new transport is one DeviceDriver subclass plus one row here (or, from a plugin,
``register_transport("name", Driver)``); profiles are checked against this table when
they are loaded, so registering is all it takes for `--devices FILE` to accept the name.
"""

from __future__ import annotations

from edgedeploy.core.errors import ConfigError, EdgeDeployError
from edgedeploy.devices.adb import AdbDriver
from edgedeploy.devices.device import Device
from edgedeploy.devices.driver import DeviceDriver, Reachability
from edgedeploy.devices.local import LocalDriver
from edgedeploy.devices.qemu.driver import QemuDriver
from edgedeploy.devices.ssh import SshDriver

__all__ = ["TRANSPORTS", "register_transport", "transport_names", "driver_for", "probe"]

TRANSPORTS: dict[str, type[DeviceDriver]] = {
    "local": LocalDriver,  # this host, in this process (cpu, gpu)
    "adb": AdbDriver,      # an Android phone, through the adb client
    "qemu": QemuDriver,    # LiteRT's aarch64 build under qemu user-mode emulation (arm64-emu)
    "ssh": SshDriver,      # a Linux board, over OpenSSH
}


def register_transport(name: str, driver: type[DeviceDriver]) -> type[DeviceDriver]:
    """Add a transport row (a plugin's one call); the name must be new."""
    if name in TRANSPORTS:
        raise ConfigError(f"transport {name!r} is already registered")
    if not (isinstance(driver, type) and issubclass(driver, DeviceDriver)):
        raise TypeError(f"transport {name}: {driver!r} is not a DeviceDriver subclass")
    TRANSPORTS[name] = driver
    return driver


def transport_names() -> list[str]:
    return list(TRANSPORTS)


def driver_for(device: Device) -> DeviceDriver:
    """The driver that serves ``device`` (it contacts nothing until asked to)."""
    try:
        driver = TRANSPORTS[device.transport]
    except KeyError:
        raise ConfigError(f"device {device.name}: unknown transport {device.transport!r}; "
                          f"registered transports: {', '.join(TRANSPORTS)}") from None
    return driver(device)


def probe(device: Device) -> Reachability:
    """Whether ``device`` is usable now: one device's failing probe (a plugin's, a missing tool)
    says why in its own row instead of ending the listing of every device."""
    try:
        return driver_for(device).probe()
    except EdgeDeployError as exc:
        return Reachability(False, " ".join(str(exc).split()))
