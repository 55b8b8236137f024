"""The arm64-emu root in the cache, and how qemu runs the Python inside it.

Shared by the builder (its smoke test) and the runner. Measured pitfall this encodes:
qemu's default ``-cpu max`` (with SME) gave wrong XNNPACK outputs, so a real core model
(Cortex-A76) is always named.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from edgedeploy.core.cache import cache_dir
from edgedeploy.core.errors import DependencyError, RemoteRunError
from edgedeploy.devices.driver import Reachability

__all__ = ["QEMU", "QEMU_CPU", "RELEASE", "SITE", "MARKER", "base_dir", "root_dir", "qemu_path", "root_info",
           "emulator_status", "run_guest_python"]

QEMU = "qemu-aarch64-static"
# A real core model: qemu's default "max" turns on SME, with which XNNPACK's outputs were wrong.
QEMU_CPU = "cortex-a76"
# The Debian release whose arm64 CPython 3.11 the root carries.
RELEASE = "bookworm"
# Where the aarch64 wheels are unpacked inside the root.
SITE = "opt/edgedeploy/site-packages"
# Written last by the set-up: a root without it is not (completely) built.
MARKER = "edgedeploy-arm64-emu.json"
NOT_SET_UP = "arm64-emu is not set up: run `edgedeploy devices setup arm64-emu`"


def base_dir() -> Path:
    return cache_dir("arm64-emu")


def root_dir() -> Path:
    return base_dir() / "root"


def qemu_path() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise DependencyError(f"{QEMU} not found: install qemu user-mode emulation (Debian package qemu-user-static)")
    return path


def root_info() -> dict[str, Any]:
    """What the set-up recorded: Debian packages, wheels, LiteRT and numpy versions."""
    marker = root_dir() / MARKER
    if not marker.is_file():
        raise DependencyError(NOT_SET_UP)
    return dict(json.loads(marker.read_text()))


def emulator_status() -> Reachability:
    try:
        qemu_path()
    except DependencyError as exc:
        return Reachability(False, str(exc))
    if not (root_dir() / MARKER).is_file():
        return Reachability(False, "not set up: run `edgedeploy devices setup arm64-emu` (downloads ~50 MB once)")
    return Reachability(True, f"qemu {QEMU_CPU}, Debian {RELEASE} python3.11, ai-edge-litert {root_info()['litert']}")


def run_guest_python(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``python3.11 -S ARGS`` inside the root, under qemu; only the root's files are visible to it."""
    root = root_dir()
    if not (root / MARKER).is_file():
        raise DependencyError(NOT_SET_UP)
    argv = [qemu_path(), "-cpu", QEMU_CPU, "-L", str(root),
            "-E", f"PYTHONHOME={root}/usr", "-E", f"PYTHONPATH={root}/{SITE}", "-E", "PYTHONNOUSERSITE=1",
            "-E", "PYTHONDONTWRITEBYTECODE=1", "-U", "LD_LIBRARY_PATH", "-U", "LD_PRELOAD",
            str(root / "usr/bin/python3.11"), "-S", *args]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise RemoteRunError(f"the emulated run did not finish within {timeout:.0f} s") from exc
