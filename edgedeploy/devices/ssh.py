"""The ``ssh`` transport: a Linux board over OpenSSH, measured with benchmark_model."""

from __future__ import annotations

from edgedeploy.core.errors import ConfigError
from edgedeploy.devices.remote import RemoteDriver
from edgedeploy.devices.transports import SshTransport

__all__ = ["SshDriver"]


class SshDriver(RemoteDriver):
    def connect(self) -> SshTransport:
        if not self.device.host:
            raise ConfigError(f"device {self.device.name} has no host: set host: in its profile")
        return SshTransport(self.device.host)

    def summary(self, info: dict[str, str | None]) -> str:
        return f"{info['host']}, {info['abi']}"
