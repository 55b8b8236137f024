"""The ``adb`` transport: an Android phone through the real adb client, measured with benchmark_model."""

from __future__ import annotations

from edgedeploy.devices.remote import RemoteDriver
from edgedeploy.devices.transports import AdbTransport

__all__ = ["AdbDriver"]


class AdbDriver(RemoteDriver):
    def connect(self) -> AdbTransport:
        # The profile's model, if it names one, must be the phone attached (ANDROID_SERIAL picks among several).
        return AdbTransport.connect(self.device.model)

    def summary(self, info: dict[str, str | None]) -> str:
        return f"{info['model']} ({info['serial']}), {info['abi']}, Android {info['android']}"
