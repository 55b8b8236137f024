"""arm64-emu: LiteRT's real aarch64 build, run under qemu user-mode emulation, for correctness on ARM kernels.

Set-up (`edgedeploy devices setup arm64-emu`) builds a private aarch64 root in the cache:
Debian bookworm's arm64 CPython 3.11 and the libraries it needs, fetched from the apt
mirror this machine is configured with (index checked against InRelease, every .deb
against the index's SHA256), plus the aarch64 wheels of numpy and ai-edge-litert at the
host's versions. No root-wide change: no dpkg architecture, no binfmt; qemu is run
explicitly with ``-L`` pointing at the root. Then every model runs through
``arm64_guest.py`` inside the emulated Python.

Measured pitfalls this encodes (see the README): qemu 7.2 shows the guest the host's x86
/proc/cpuinfo, on which LiteRT's cpuinfo crashes, so the root carries an aarch64
/proc/cpuinfo matching the emulated core; qemu's default ``-cpu max`` (with SME) gives
wrong XNNPACK outputs, so a real core model (Cortex-A76) is always named; absolute
symlinks in .debs are made relative so nothing resolves to host files; .pyc files are
compiled once with the host's CPython 3.11 (same bytecode), which cuts start-up 4x.
"""

from __future__ import annotations

import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from edgedeploy.backends.base import LoadOptions, Runner
from edgedeploy.core.artifacts import atomic_write_text
from edgedeploy.core.cache import cache_dir
from edgedeploy.core.errors import DependencyError, ValidationError
from edgedeploy.core.hashing import sha256_file

__all__ = ["setup_emulator", "emulator_status", "EmulatedLiteRTRunner", "emulated_benchmark", "QEMU_CPU"]

QEMU = "qemu-aarch64-static"
# A real core model: qemu's default "max" turns on SME, with which XNNPACK's outputs were wrong.
QEMU_CPU = "cortex-a76"
# /proc/cpuinfo of that core as qemu emulates it (MIDR 0x414fd0b1; HWCAPs qemu gives cortex-a76).
CPUINFO_ENTRY = ("processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd aes pmull sha1 sha2 crc32 atomics fphp "
                 "asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
                 "CPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n")
RELEASE = "bookworm"
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
USRMERGE = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib"}
SITE = "opt/edgedeploy/site-packages"
GUEST_SCRIPT = Path(__file__).with_name("arm64_guest.py")
MARKER = "edgedeploy-arm64-emu.json"


def _root() -> Path:
    return cache_dir("arm64-emu") / "root"


def _qemu() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise DependencyError(f"{QEMU} not found: install qemu user-mode emulation (Debian package qemu-user-static)")
    return path


def emulator_status() -> Any:
    from edgedeploy.devices.probe import Reachability

    try:
        _qemu()
    except DependencyError as exc:
        return Reachability(False, str(exc))
    marker = _root() / MARKER
    if not marker.is_file():
        return Reachability(False, "not set up: run `edgedeploy devices setup arm64-emu` (downloads ~50 MB once)")
    info = json.loads(marker.read_text())
    return Reachability(True, f"qemu {QEMU_CPU}, Debian {RELEASE} python3.11, ai-edge-litert {info['litert']}")


# ---------------------------------------------------------------- set-up


def _apt_sources() -> list[tuple[str, str]]:
    """(mirror URI, suite) for this release, from apt's deb822 and one-line source files."""
    from debian.deb822 import Deb822

    found = []
    files = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for path in files:
        for stanza in Deb822.iter_paragraphs(path.read_text()):
            if "deb" in stanza.get("Types", "").split() and stanza.get("Enabled", "yes") != "no" \
                    and "main" in stanza.get("Components", "").split():
                found += [(u.rstrip("/"), s) for u in stanza.get("URIs", "").split() for s in stanza["Suites"].split()]
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if path.is_file():
            for line in path.read_text().splitlines():
                m = re.match(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$", line.split("#")[0].strip())
                if m and "main" in m.group(3).split():
                    found.append((m.group(1).rstrip("/"), m.group(2)))
    found = [(u, s) for u, s in found if s == RELEASE or s.startswith(RELEASE + "-")]
    return found or [("http://deb.debian.org/debian", RELEASE)]


def _fetch(url: str, dest: Path, sha256: str | None = None) -> Path:
    if dest.is_file() and (sha256 is None or sha256_file(dest) == sha256):
        return dest
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            data = response.read()
    except OSError as exc:
        raise DependencyError(f"cannot download {url} ({exc.__class__.__name__}): arm64-emu set-up needs the "
                              "Debian mirror and PyPI once") from None
    tmp = dest.with_suffix(dest.suffix + ".part")
    tmp.write_bytes(data)
    if sha256 is not None and sha256_file(tmp) != sha256:
        tmp.unlink()
        raise ValidationError(f"{url}: sha256 does not match the signed index (InRelease, verified with gpgv)")
    os.replace(tmp, dest)
    return dest


def _verify_signature(in_release: Path) -> None:
    """InRelease must carry a valid signature by Debian's archive keys (gpgv, debian-archive-keyring)."""
    keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
    if shutil.which("gpgv") is None or not keyring.is_file():
        raise DependencyError("arm64-emu set-up verifies Debian's signatures: it needs gpgv and "
                              "debian-archive-keyring (Debian packages gpgv, debian-archive-keyring)")
    result = subprocess.run(["gpgv", "--keyring", str(keyring), str(in_release)], capture_output=True, text=True)
    if result.returncode != 0:
        in_release.unlink()
        raise ValidationError(f"{in_release.name}: bad signature, refused ({result.stderr.strip()[-160:]})")


def _index(downloads: Path) -> dict[str, dict[str, str]]:
    """Every arm64 package of the release (highest version across suites), with its download URL."""
    from debian.deb822 import Packages, Release
    from debian.debian_support import Version

    best: dict[str, dict[str, str]] = {}
    for uri, suite in _apt_sources():
        tag = re.sub(r"\W+", "_", f"{uri}_{suite}")
        in_release = _fetch(f"{uri}/dists/{suite}/InRelease", downloads / f"{tag}.InRelease")
        _verify_signature(in_release)
        release = Release(in_release.read_text())
        entry = next((e for e in release.get("SHA256", []) if e["name"] == "main/binary-arm64/Packages.xz"), None)
        if entry is None:
            continue
        packages = _fetch(f"{uri}/dists/{suite}/main/binary-arm64/Packages.xz", downloads / f"{tag}.Packages.xz",
                          entry["sha256"])
        for stanza in Packages.iter_paragraphs(lzma.decompress(packages.read_bytes()).decode(), use_apt_pkg=False):
            name = stanza["Package"]
            if name not in best or Version(stanza["Version"]) > Version(best[name]["Version"]):
                best[name] = {k: stanza[k] for k in ("Package", "Version", "Filename", "SHA256")} | {
                    "Depends": ", ".join(f for f in (stanza.get("Pre-Depends"), stanza.get("Depends")) if f),
                    "uri": uri}
    if not best:
        raise DependencyError(f"no arm64 package index found for Debian {RELEASE} on the configured mirrors")
    return best


def _closure(index: dict[str, dict[str, str]]) -> list[dict[str, str]]:
    from debian.deb822 import PkgRelation

    chosen: dict[str, dict[str, str]] = {}
    todo = list(SEED)
    while todo:
        name = todo.pop()
        if name in chosen or name in SKIP:
            continue
        if name not in index:
            raise DependencyError(f"Debian {RELEASE} arm64 has no package {name}")
        chosen[name] = index[name]
        for alternatives in PkgRelation.parse_relations(index[name]["Depends"]) if index[name]["Depends"] else []:
            # The first alternative that exists; a skipped one means the group is not needed.
            names = [a["name"] for a in alternatives]
            pick = next((n for n in names if n in index or n in SKIP), None)
            if pick is not None:
                todo.append(pick)
    return sorted(chosen.values(), key=lambda p: p["Package"])


def _inside(member: str) -> str:
    rel = os.path.normpath(member.lstrip("./").lstrip("/"))
    top, _, rest = rel.partition("/")
    return f"{USRMERGE[top]}/{rest}" if top in USRMERGE and rest else rel


def _extract_deb(deb: Path, root: Path) -> None:
    from debian.debfile import DebFile

    data = DebFile(str(deb)).data.tgz()
    for member in data.getmembers():
        rel = _inside(member.name)
        if rel in (".", "") or rel.startswith(".."):
            continue
        dest = root / rel
        # A member must land inside the root, also through links made by earlier members.
        if not os.path.realpath(dest.parent).startswith(os.path.realpath(root) + os.sep) \
                and os.path.realpath(dest.parent) != os.path.realpath(root):
            raise ValidationError(f"{deb.name}: member {member.name} would be written outside the root, refused")
        if member.isdir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink() or dest.exists():
            dest.unlink()
        if member.issym():
            target = member.linkname
            if target.startswith("/"):  # an absolute link would resolve to the host's file
                target = os.path.relpath(root / _inside(target), dest.parent)
            dest.symlink_to(target)
        elif member.islnk():
            os.link(root / _inside(member.linkname), dest)
        elif member.isfile():
            with data.extractfile(member) as src, dest.open("wb") as out:
                shutil.copyfileobj(src, out)
            dest.chmod(member.mode & 0o7777)


def _install_wheels(wheels: Path, site: Path) -> list[str]:
    names = []
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as z:
            for info in z.infolist():
                name = re.sub(r"^[^/]+\.data/(?:purelib|platlib)/", "", info.filename)
                if re.match(r"^[^/]+\.data/", name) or name.endswith("/"):
                    continue
                dest = site / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out)
                dest.chmod((info.external_attr >> 16) & 0o777 or 0o644)
        names.append(wheel.name)
    return names


def setup_emulator(on_step: Any = None) -> dict[str, Any]:
    """Build (or rebuild) the aarch64 root in the cache; returns what it holds and how long it took."""
    try:
        import debian  # noqa: F401
    except ImportError:
        raise DependencyError("arm64-emu set-up needs python-debian: pip install 'edgedeploy[emu]'") from None
    qemu = _qemu()
    start = time.perf_counter()
    step = on_step or (lambda _msg: None)
    base = cache_dir("arm64-emu")
    downloads = base / "downloads"
    downloads.mkdir(exist_ok=True)
    step("package index")
    packages = _closure(_index(downloads))
    staging = Path(tempfile.mkdtemp(prefix=".tmp-root-", dir=base))
    try:
        step(f"{len(packages)} Debian arm64 packages")
        for top, target in USRMERGE.items():
            (staging / target).mkdir(parents=True, exist_ok=True)
            (staging / top).symlink_to(target)
        for p in packages:
            deb = _fetch(f"{p['uri']}/{p['Filename']}", downloads / Path(p["Filename"]).name, p["SHA256"])
            _extract_deb(deb, staging)
        # Shadow host files qemu's -L would otherwise fall back to.
        (staging / "etc").mkdir(exist_ok=True)
        for name in ("ld.so.cache", "ld.so.preload"):
            (staging / "etc" / name).write_bytes(b"")
        (staging / "proc").mkdir()
        (staging / "proc" / "cpuinfo").write_text("".join(CPUINFO_ENTRY.format(i=i) for i in range(os.cpu_count() or 1)))
        step("aarch64 wheels")
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
        result = subprocess.run(pip, capture_output=True, text=True)
        if result.returncode != 0:
            raise DependencyError(f"pip could not download the aarch64 wheels: {result.stderr.strip()[-300:]}")
        installed = _install_wheels(wheels, staging / SITE)
        step("byte-compile")
        if sys.version_info[:2] == (3, 11):  # same bytecode as the guest's 3.11
            subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0",
                            str(staging / "usr/lib/python3.11"), str(staging / SITE)], capture_output=True)
        atomic_write_text(staging / MARKER, json.dumps({
            "packages": {p["Package"]: p["Version"] for p in packages}, "wheels": installed,
            "litert": metadata.version("ai-edge-litert"), "numpy": metadata.version("numpy")}, indent=1))
        old = base / ".tmp-old-root"
        if _root().exists():
            os.replace(_root(), old)
        os.replace(staging, _root())
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    step("smoke test")
    check = _guest(["-c", "import numpy; from ai_edge_litert.interpreter import Interpreter; print('ok')"], 300)
    if check.stdout.strip() != "ok":
        raise ValidationError(f"the emulated python does not start: {check.stderr.strip()[-300:]}")
    size = sum(f.stat().st_size for f in _root().rglob("*") if f.is_file() and not f.is_symlink())
    return {"root": str(_root()), "qemu": qemu, "cpu": QEMU_CPU, "packages": len(packages), "wheels": installed,
            "size_mb": round(size / 2**20, 1), "seconds": round(time.perf_counter() - start, 1)}


# ---------------------------------------------------------------- running


def _guest(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    root = _root()
    if not (root / MARKER).is_file():
        raise DependencyError("arm64-emu is not set up: run `edgedeploy devices setup arm64-emu`")
    argv = [_qemu(), "-cpu", QEMU_CPU, "-L", str(root),
            "-E", f"PYTHONHOME={root}/usr", "-E", f"PYTHONPATH={root}/{SITE}", "-E", "PYTHONNOUSERSITE=1",
            "-E", "PYTHONDONTWRITEBYTECODE=1", "-U", "LD_LIBRARY_PATH", "-U", "LD_PRELOAD",
            str(root / "usr/bin/python3.11"), "-S", *args]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ValidationError(f"the emulated run did not finish within {timeout:.0f} s") from None


def _run_model(model: Path, tensors: np.ndarray, threads: int, xnnpack: bool, warmup: int = 0,
               runs: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="edgedeploy-arm64-") as tmp:
        inputs, outputs = Path(tmp) / "in.npy", Path(tmp) / "out.npy"
        np.save(inputs, tensors)
        args = [str(GUEST_SCRIPT), str(Path(model).resolve()), str(inputs), str(outputs), "--threads", str(threads),
                "--warmup", str(warmup), "--runs", str(runs), *([] if xnnpack else ["--no-xnnpack"])]
        # About 0.45 s per MobileNetV2 inference under emulation, plus 2 s to start.
        result = _guest(args, 60 + 5 * (len(tensors) + warmup + runs))
        if result.returncode != 0:
            raise ValidationError(f"the emulated LiteRT run failed (exit {result.returncode}): "
                                  f"{(result.stderr.strip().splitlines() or ['no output'])[-1][:300]}")
        return np.load(outputs), json.loads(result.stdout.strip().splitlines()[-1])


class EmulatedLiteRTRunner(Runner):
    """A .tflite run by LiteRT's aarch64 build under qemu; IO spec from the host's view of the same file."""

    runtime = "litert"

    def __init__(self, source: str, options: LoadOptions):
        from edgedeploy.backends.litert.runner import LiteRTRunner

        host = LiteRTRunner(source, options)
        self.source, self.io, self.batch_size = source, host.io, host.batch_size
        self.threads, self.xnnpack = options.threads, options.xnnpack

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        return self.infer_many(tensor[None])[0]

    def infer_many(self, tensors: np.ndarray) -> np.ndarray:
        outputs, _ = _run_model(Path(self.source), tensors, self.threads, self.xnnpack)
        return outputs

    def predict(self, images_hwc: np.ndarray) -> np.ndarray:
        # One emulated process per batch: start-up (2 s) is paid once, not per image.
        step = self.batch_size or len(images_hwc)
        tensors = np.stack([self.io.input.feed(images_hwc[i:i + step]) for i in range(0, len(images_hwc), step)])
        return np.concatenate([self.io.output.read(raw) for raw in self.infer_many(tensors)])

    def versions(self) -> dict[str, str]:
        info = json.loads((_root() / MARKER).read_text())
        return {"ai-edge-litert": f"{info['litert']} (aarch64)", "qemu": QEMU_CPU}

    def execution(self) -> dict[str, Any]:
        return {"device": f"qemu-aarch64 {QEMU_CPU}", "emulated": True,
                "delegate": "XNNPACK" if self.xnnpack else "none (builtin kernels)"}


def emulated_benchmark(model: Path, options: LoadOptions, runs: int, warmup: int) -> dict[str, Any]:
    """Per-invoke times under emulation: flagged as emulated, they are not device latency."""
    runner = EmulatedLiteRTRunner(str(model), options)
    from edgedeploy.data.synthetic import synthetic_images

    tensor = runner.io.input.feed(synthetic_images(runner.io.preprocessing, 1))
    _, timing = _run_model(Path(model), tensor[None], options.threads, options.xnnpack, warmup, runs)
    times = np.array(timing["invoke_s"]) * 1000.0
    return {"tool": "edgedeploy (qemu)", "emulated": True, "threads": options.threads, "runs": runs, "warmup": warmup,
            "latency_ms": {"p50": float(np.percentile(times, 50)), "p90": float(np.percentile(times, 90)),
                           "mean": float(times.mean()), "min": float(times.min()), "max": float(times.max())},
            "load_ms": timing["load_s"] * 1000.0, "machine": timing["machine"], "execution": runner.execution(),
            "versions": runner.versions(), "model_size_bytes": Path(model).stat().st_size,
            "note": "emulated: not device latency"}
