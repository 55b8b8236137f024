"""Debian's arm64 package index, read from the apt mirror this machine is configured with, and
trusted only through Debian's signature: InRelease is checked with gpgv against
debian-archive-keyring, the Packages index against InRelease's SHA256, and each .deb
against the index's SHA256 (python-debian parses them)."""

from __future__ import annotations

import lzma
import os
import re
import shutil
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from edgedeploy.core.errors import DependencyError, IntegrityError
from edgedeploy.core.hashing import sha256_file
from edgedeploy.core.processes import run_tool
from edgedeploy.devices.qemu.guest import RELEASE

__all__ = ["Package", "package_index", "dependency_closure", "fetch"]

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# One index entry: Package, Version, Filename, SHA256, Depends (with Pre-Depends), uri (its mirror).
Package = dict[str, str]


def _apt_sources() -> list[tuple[str, str]]:
    """(mirror URI, suite) for this release, from apt's deb822 and one-line source files."""
    from debian.deb822 import Deb822

    found = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
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


def fetch(url: str, dest: Path, sha256: str | None = None) -> Path:
    """``url`` saved at ``dest`` (kept if already there with that hash); refused if the hash differs."""
    if dest.is_file() and (sha256 is None or sha256_file(dest) == sha256):
        return dest
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            data = response.read()
    except OSError as exc:
        raise DependencyError(f"cannot download {url} ({exc.__class__.__name__}): arm64-emu set-up needs the "
                              "Debian mirror and PyPI once") from exc
    tmp = dest.with_suffix(dest.suffix + ".part")
    tmp.write_bytes(data)
    if sha256 is not None and sha256_file(tmp) != sha256:
        tmp.unlink()
        raise IntegrityError(f"{url}: sha256 does not match the signed index (InRelease, verified with gpgv)")
    os.replace(tmp, dest)
    return dest


def verify_signature(in_release: Path) -> None:
    """InRelease must carry a valid signature by Debian's archive keys (gpgv, debian-archive-keyring)."""
    if shutil.which("gpgv") is None or not KEYRING.is_file():
        raise DependencyError("arm64-emu set-up verifies Debian's signatures: it needs gpgv and "
                              "debian-archive-keyring (Debian packages gpgv, debian-archive-keyring)")
    result = run_tool(["gpgv", "--keyring", str(KEYRING), str(in_release)], 60, "checking Debian's signature")
    if result.returncode != 0:
        in_release.unlink()  # never reused: the next set-up downloads it again
        raise IntegrityError(f"{in_release.name}: bad signature, refused ({result.stderr.strip()[-160:]})")


def package_index(downloads: Path) -> dict[str, Package]:
    """Every arm64 package of the release (highest version across suites), with its download URL."""
    from debian.deb822 import Packages, Release
    from debian.debian_support import Version

    best: dict[str, Package] = {}
    for uri, suite in _apt_sources():
        tag = re.sub(r"\W+", "_", f"{uri}_{suite}")
        in_release = fetch(f"{uri}/dists/{suite}/InRelease", downloads / f"{tag}.InRelease")
        verify_signature(in_release)
        release = Release(in_release.read_text())
        entry = next((e for e in release.get("SHA256", []) if e["name"] == "main/binary-arm64/Packages.xz"), None)
        if entry is None:
            continue
        packages = fetch(f"{uri}/dists/{suite}/main/binary-arm64/Packages.xz", downloads / f"{tag}.Packages.xz",
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


def dependency_closure(index: dict[str, Package], seed: Iterable[str], skip: set[str]) -> list[Package]:
    """``seed`` and everything it depends on, except ``skip`` (and what only a skipped package needs)."""
    from debian.deb822 import PkgRelation

    chosen: dict[str, Package] = {}
    todo = list(seed)
    while todo:
        name = todo.pop()
        if name in chosen or name in skip:
            continue
        if name not in index:
            raise DependencyError(f"Debian {RELEASE} arm64 has no package {name}")
        chosen[name] = index[name]
        for alternatives in PkgRelation.parse_relations(index[name]["Depends"]) if index[name]["Depends"] else []:
            # The first alternative that exists; a skipped one means the group is not needed.
            names = [a["name"] for a in alternatives]
            pick = next((n for n in names if n in index or n in skip), None)
            if pick is not None:
                todo.append(pick)
    return sorted(chosen.values(), key=lambda p: p["Package"])
