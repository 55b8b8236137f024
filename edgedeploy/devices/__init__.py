"""Devices: where a model runs. Profiles are data (profiles.yaml in this package; users add
or override them with ``--devices FILE`` or ``$EDGEDEPLOY_DEVICES``); each profile names a
transport, and one :class:`DeviceDriver` per transport (``registry.TRANSPORTS``: local,
qemu, adb, ssh) probes, sets up, evaluates on and benches that device, every latency
coming back as one :class:`LatencyResult`.
"""

from __future__ import annotations

from edgedeploy.devices.device import Device
from edgedeploy.devices.driver import BenchRequest, DeviceDriver, NothingToSetUp, Reachability
from edgedeploy.devices.latency import LatencyResult, LatencyStats
from edgedeploy.devices.profiles import DEVICES_ENV, builtin_devices, default_threads, get_device, load_devices
from edgedeploy.devices.registry import TRANSPORTS, driver_for, probe, register_transport, transport_names

__all__ = ["Device", "get_device", "load_devices", "builtin_devices", "default_threads", "DEVICES_ENV",
           "DeviceDriver", "Reachability", "BenchRequest", "NothingToSetUp", "LatencyResult", "LatencyStats",
           "TRANSPORTS", "register_transport", "transport_names", "driver_for", "probe"]
