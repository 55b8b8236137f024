"""Building the arm64-emu root (`edgedeploy devices setup arm64-emu`): Debian's arm64 CPython and
the libraries it needs, the aarch64 wheels of numpy and ai-edge-litert at the host's versions,
then a smoke test. Built in a staging folder and swapped in whole: a failed set-up leaves the
previous root (or none), never half of one.

Measured pitfalls this encodes (see docs/devices.md): qemu 7.2 shows the guest the host's x86
/proc/cpuinfo, on which LiteRT's cpuinfo crashes, so the root carries an aarch64
/proc/cpuinfo matching the emulated core; absolute symlinks in .debs are made relative so
nothing resolves to host files; .pyc files are compiled once with the host's CPython 3.11
(same bytecode), which cuts start-up 4x.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from edgedeploy.core.artifacts import atomic_write_text
from edgedeploy.core.errors import DependencyError, RemoteRunError
from edgedeploy.core.processes import run_tool
from edgedeploy.devices.driver import StepCallback
from edgedeploy.devices.qemu.apt import Package, dependency_closure, fetch, package_index
from edgedeploy.devices.qemu.guest import MARKER, QEMU_CPU, SITE, base_dir, qemu_path, root_dir, run_guest_python
from edgedeploy.devices.qemu.unpack import USRMERGE, extract_deb, install_wheels

__all__ = ["build_rootfs", "SEED", "SKIP"]

SEED = ["python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6", "libgcc-s1",
        "libstdc++6", "zlib1g", "libffi8", "libssl3", "libexpat1"]
# Never needed in a root no maintainer script runs in, or only behind stdlib modules LiteRT never imports.
SKIP = {"debconf", "debconf-2.0", "dpkg", "perl-base", "install-info", "libc-bin", "tzdata", "media-types",
        "mime-support", "readline-common", "sensible-utils", "coreutils", "base-files", "usrmerge",
        "init-system-helpers", "libncursesw6", "libtinfo6", "libreadline8", "libdb5.3", "libnsl2", "libtirpc3",
        "libsqlite3-0", "libuuid1", "libcrypt1"}
# pip does not expand manylinux_2_28 down to 2_27, and ai-edge-litert 2.x ships only manylinux_2_27.
WHEEL_PLATFORMS = ["manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_27_aarch64",
                   "manylinux_2_28_aarch64"]
# /proc/cpuinfo of QEMU_CPU as qemu emulates it (MIDR 0x414fd0b1; HWCAPs qemu gives cortex-a76).
# pip fetching ~60 MB of wheels from PyPI, and byte-compiling the root: minutes at worst, never hours.
PIP_TIMEOUT_S, COMPILE_TIMEOUT_S = 1800, 900
CPUINFO_ENTRY = ("processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd aes pmull sha1 sha2 crc32 atomics fphp "
                 "asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
                 "CPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n")


def _download_wheels(downloads: Path) -> Path:
    """The aarch64 cp311 wheels of numpy and ai-edge-litert at the host's versions, in their own folder."""
    versions = [f"numpy=={metadata.version('numpy')}", f"ai-edge-litert=={metadata.version('ai-edge-litert')}"]
    # One folder per version pair: wheels of other versions never mix into the root.
    wheels = downloads / ("wheels-" + "-".join(v.split("==")[1] for v in versions))
    # Once downloaded, the wheels are taken from the cache alone: set-up works offline after the first time.
    have = all(any(wheels.glob(f"{v.split('==')[0].replace('-', '_')}-{v.split('==')[1]}-*.whl"))
               for v in versions) if wheels.is_dir() else False
    source = ["--no-index", "--find-links", str(wheels)] if have else []
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", "3.11",
           "--implementation", "cp", "--abi", "cp311", "-d", str(wheels), *source,
           *[a for p in WHEEL_PLATFORMS for a in ("--platform", p)], *versions]
    result = run_tool(pip, PIP_TIMEOUT_S, "pip downloading the aarch64 wheels")
    if result.returncode != 0:
        raise DependencyError(f"pip could not download the aarch64 wheels: {result.stderr.strip()[-300:]}")
    return wheels


def _populate(staging: Path, packages: list[Package], downloads: Path, step: StepCallback) -> list[str]:
    """The packages, the shadowing files and the wheels into ``staging``; the wheels' names."""
    step(f"{len(packages)} Debian arm64 packages")
    for top, target in USRMERGE.items():
        (staging / target).mkdir(parents=True, exist_ok=True)
        (staging / top).symlink_to(target)
    for p in packages:
        deb = fetch(f"{p['uri']}/{p['Filename']}", downloads / Path(p["Filename"]).name, p["SHA256"])
        extract_deb(deb, staging)
    # Shadow host files qemu's -L would otherwise fall back to.
    (staging / "etc").mkdir(exist_ok=True)
    for name in ("ld.so.cache", "ld.so.preload"):
        (staging / "etc" / name).write_bytes(b"")
    (staging / "proc").mkdir()
    (staging / "proc" / "cpuinfo").write_text("".join(CPUINFO_ENTRY.format(i=i) for i in range(os.cpu_count() or 1)))
    step("aarch64 wheels")
    installed = install_wheels(_download_wheels(downloads), staging / SITE)
    step("byte-compile")
    if sys.version_info[:2] == (3, 11):  # same bytecode as the guest's 3.11
        run_tool([sys.executable, "-m", "compileall", "-q", "-j", "0", str(staging / "usr/lib/python3.11"),
                  str(staging / SITE)], COMPILE_TIMEOUT_S, "byte-compiling the arm64 root")
    atomic_write_text(staging / MARKER, json.dumps({
        "packages": {p["Package"]: p["Version"] for p in packages}, "wheels": installed,
        "litert": metadata.version("ai-edge-litert"), "numpy": metadata.version("numpy")}, indent=1))
    return installed


def build_rootfs(on_step: StepCallback | None = None) -> dict[str, Any]:
    """Build (or rebuild) the aarch64 root in the cache; returns what it holds and how long it took."""
    try:
        import debian  # noqa: F401
    except ImportError as exc:
        raise DependencyError("arm64-emu set-up needs python-debian: pip install 'edgedeploy[emu]'") from exc
    qemu = qemu_path()
    start = time.perf_counter()
    step = on_step or (lambda _msg: None)
    base = base_dir()
    downloads = base / "downloads"
    downloads.mkdir(exist_ok=True)
    step("package index")
    packages = dependency_closure(package_index(downloads), SEED, SKIP)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-root-", dir=base))
    try:
        installed = _populate(staging, packages, downloads, step)
        old = base / ".tmp-old-root"
        if root_dir().exists():
            os.replace(root_dir(), old)
        os.replace(staging, root_dir())
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    step("smoke test")
    check = run_guest_python(["-c", "import numpy; from ai_edge_litert.interpreter import Interpreter; print('ok')"],
                             300)
    if check.stdout.strip() != "ok":
        raise RemoteRunError(f"the emulated python does not start: {check.stderr.strip()[-300:]}")
    size = sum(f.stat().st_size for f in root_dir().rglob("*") if f.is_file() and not f.is_symlink())
    return {"root": str(root_dir()), "qemu": qemu, "cpu": QEMU_CPU, "packages": len(packages), "wheels": installed,
            "size_mb": round(size / 2**20, 1), "seconds": round(time.perf_counter() - start, 1)}
