"""Reaching a remote device: Android phones through the real ``adb`` client, Linux boards through ``ssh``.

Every call has a timeout, so a hung device is an error, never a hang. adb's own
error lines ("adb: no devices/emulators found", "device unauthorized", ...) are turned
into one-line messages that say what to do.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edgedeploy.core.errors import DependencyError

__all__ = ["AdbDevice", "AdbTransport", "SshTransport", "DeviceUnavailable", "Transport", "list_adb_devices"]

COMMAND_TIMEOUT_S = 60.0
ANDROID_TMP = "/data/local/tmp"


class DeviceUnavailable(DependencyError):
    """The device, or the tool that reaches it, is not there or not usable right now."""


@dataclass(frozen=True)
class AdbDevice:
    serial: str
    state: str
    model: str | None = None
    product: str | None = None
    device: str | None = None


def _adb_path() -> str:
    path = shutil.which(os.environ.get("ADB", "adb"))
    if path is None:
        raise DeviceUnavailable("adb not found: install Android platform-tools (Debian package adb) or set $ADB")
    return path


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, errors="replace")
    except subprocess.TimeoutExpired as exc:
        raise DeviceUnavailable(
            f"{Path(argv[0]).name} {' '.join(argv[1:3])} did not answer within {timeout:.0f} s") from exc
    except OSError as exc:
        raise DeviceUnavailable(f"cannot run {argv[0]}: {exc.strerror}") from exc


def _tool_error(stderr: str) -> str:
    """The first line of an adb/ssh/scp error, without adb's "adb: " / "error: " prefixes."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("* ")]
    lines = [re.sub(r"^(?:adb(?:\.exe)?: (?:error: )?|error: )", "", line) for line in lines]
    return lines[0] if lines else "no output"


def list_adb_devices(timeout: float = 15.0) -> list[AdbDevice]:
    """``adb devices -l``, parsed (model names have adb's underscores turned back into spaces)."""
    result = _run([_adb_path(), "devices", "-l"], timeout)
    if result.returncode != 0:
        raise DeviceUnavailable(f"adb devices failed: {_tool_error(result.stderr)}")
    devices = []
    for line in result.stdout.splitlines():
        if not line.strip() or line.startswith("List of devices") or line.startswith("* "):
            continue
        serial, state, *rest = line.split()
        fields = dict(part.split(":", 1) for part in rest if ":" in part)
        model = fields.get("model")
        devices.append(AdbDevice(serial, state, model.replace("_", " ") if model else None,
                                 fields.get("product"), fields.get("device")))
    return devices


def _choose(devices: list[AdbDevice], model: str | None, serial: str | None) -> AdbDevice:
    if serial:
        match = [d for d in devices if d.serial == serial]
        if not match:
            raise DeviceUnavailable(f"Android device {serial!r} (ANDROID_SERIAL) is not attached; attached: "
                                    f"{', '.join(d.serial for d in devices) or 'none'}")
        devices = match
    if not devices:
        raise DeviceUnavailable("no Android device attached: `adb devices` lists none "
                                "(connect the phone by USB with USB debugging on)")
    usable = [d for d in devices if d.state == "device"]
    if not usable:
        d = devices[0]
        hint = {"unauthorized": "accept the 'Allow USB debugging' prompt on the phone",
                "offline": "reconnect the cable or run `adb kill-server`"}.get(d.state, "check the connection")
        raise DeviceUnavailable(f"Android device {d.serial} is {d.state}: {hint}")
    if model:
        wanted = [d for d in usable if d.model == model]
        if not wanted:
            seen = ", ".join(f"{d.model or '?'} ({d.serial})" for d in usable)
            raise DeviceUnavailable(f"no attached Android device is a {model}; attached: {seen}")
        usable = wanted
    if len(usable) > 1:
        raise DeviceUnavailable(f"{len(usable)} Android devices attached ({', '.join(d.serial for d in usable)}): "
                                "set ANDROID_SERIAL to pick one")
    return usable[0]


class Transport(Protocol):
    """Push files to a device and run commands there."""

    name: str
    tmp_root: str

    def push(self, local: Path, remote: str) -> None: ...

    def shell(self, argv: list[str], timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]: ...

    def describe(self) -> dict[str, str | None]: ...


class AdbTransport:
    tmp_root = ANDROID_TMP

    def __init__(self, device: AdbDevice):
        self.adb = _adb_path()
        self.device = device
        self.name = f"adb:{device.serial}"

    @classmethod
    def connect(cls, model: str | None = None, timeout: float = 15.0) -> AdbTransport:
        """The one attached, authorised phone (of ``model`` if given; ANDROID_SERIAL picks among several)."""
        return cls(_choose(list_adb_devices(timeout), model, os.environ.get("ANDROID_SERIAL") or None))

    def _adb(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return _run([self.adb, "-s", self.device.serial, *args], timeout)

    def getprop(self, name: str) -> str:
        result = self._adb(["shell", "getprop", name], 15.0)
        if result.returncode != 0:
            raise DeviceUnavailable(f"adb shell getprop failed on {self.device.serial}: {_tool_error(result.stderr)}")
        return result.stdout.strip()

    def push(self, local: Path, remote: str) -> None:
        result = self._adb(["push", str(local), remote], COMMAND_TIMEOUT_S * 5)
        if result.returncode != 0:
            raise DeviceUnavailable(f"adb push {local.name} failed on {self.device.serial}: {_tool_error(result.stderr)}")

    def shell(self, argv: list[str], timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        # adb joins its arguments with spaces and the device's shell re-parses them: quote each one.
        return self._adb(["shell", *map(shlex.quote, argv)], timeout)

    def describe(self) -> dict[str, str | None]:
        return {"serial": self.device.serial, "model": self.getprop("ro.product.model"),
                "abi": self.getprop("ro.product.cpu.abi"),
                "soc": self.getprop("ro.soc.model") or self.getprop("ro.board.platform") or None,
                "android": self.getprop("ro.build.version.release")}


class SshTransport:
    tmp_root = "/tmp"
    OPTIONS = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]

    def __init__(self, host: str):
        for tool in ("ssh", "scp"):
            if shutil.which(tool) is None:
                raise DeviceUnavailable(f"{tool} not found: install an OpenSSH client")
        self.host = host
        self.name = f"ssh:{host}"

    def push(self, local: Path, remote: str) -> None:
        result = _run(["scp", "-q", *self.OPTIONS, str(local), f"{self.host}:{remote}"], COMMAND_TIMEOUT_S * 5)
        if result.returncode != 0:
            raise DeviceUnavailable(f"scp {local.name} to {self.host} failed: {_tool_error(result.stderr)}")

    def shell(self, argv: list[str], timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        return _run(["ssh", *self.OPTIONS, self.host, "--", *map(shlex.quote, argv)], timeout)

    def describe(self) -> dict[str, str | None]:
        result = self.shell(["uname", "-m"], 20.0)
        if result.returncode != 0:
            raise DeviceUnavailable(f"{self.host} is not reachable over ssh: {_tool_error(result.stderr)}")
        return {"host": self.host, "abi": result.stdout.strip()}
