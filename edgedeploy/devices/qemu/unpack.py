"""Unpacking into the arm64-emu root: .deb data members (usrmerged, links kept inside the root)
and wheels (their purelib/platlib files into the root's site-packages)."""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from pathlib import Path

from edgedeploy.core.errors import IntegrityError

__all__ = ["USRMERGE", "extract_deb", "install_wheels"]

# bookworm's usrmerge: /bin, /sbin and /lib are links into /usr.
USRMERGE = {"bin": "usr/bin", "sbin": "usr/sbin", "lib": "usr/lib"}


def _inside(member: str) -> str:
    """A member's path relative to the root, with usrmerge applied."""
    rel = os.path.normpath(member.lstrip("./").lstrip("/"))
    top, _, rest = rel.partition("/")
    return f"{USRMERGE[top]}/{rest}" if top in USRMERGE and rest else rel


def _within(path: Path, root: Path) -> bool:
    real, real_root = os.path.realpath(path), os.path.realpath(root)
    return real == real_root or real.startswith(real_root + os.sep)


def extract_deb(deb: Path, root: Path) -> None:
    """The .deb's data members under ``root``; a member that would land outside it is refused."""
    from debian.debfile import DebFile

    data = DebFile(str(deb)).data.tgz()
    for member in data.getmembers():
        rel = _inside(member.name)
        if rel in (".", ""):
            continue
        dest = root / rel
        # Inside the root also through links made by earlier members ("../" and symlinked parents).
        if rel.startswith("..") or not _within(dest.parent, root):
            raise IntegrityError(f"{deb.name}: member {member.name} would be written outside the root, refused")
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


def install_wheels(wheels: Path, site: Path) -> list[str]:
    """Every wheel in ``wheels`` unpacked into ``site`` (no scripts, no headers); their file names."""
    names = []
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as z:
            for info in z.infolist():
                name = re.sub(r"^[^/]+\.data/(?:purelib|platlib)/", "", info.filename)
                if re.match(r"^[^/]+\.data/", name) or name.endswith("/"):
                    continue
                dest = site / name
                if not _within(dest.parent, site):
                    raise IntegrityError(f"{wheel.name}: member {info.filename} would be written outside "
                                         "site-packages, refused")
                dest.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out)
                dest.chmod((info.external_attr >> 16) & 0o777 or 0o644)
        names.append(wheel.name)
    return names
