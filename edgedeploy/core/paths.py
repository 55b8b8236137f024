"""Every path a user names is checked here, once, before anything is read or written.

- A name (``--name``, a target's file stem) is a file name, never a path: no separator, no ``..``.
- An output stays inside its output folder, symlinks resolved.
- Special files (FIFOs, devices, sockets, anything under /proc, /sys or /dev) are refused on read and on
  write: reading one blocks or never ends, writing one reaches the kernel.
- Text inputs (YAML, JSON, synsets, labels) are read with a size bound, before parsing.
Each refusal is one line: InputFileError / OutputDirError (exit 3) for a path, ConfigError (exit 2) for a name.
"""

from __future__ import annotations

import stat
from pathlib import Path

from edgedeploy.core.errors import ConfigError, InputFileError, OutputDirError

__all__ = ["MAX_TEXT_BYTES", "MAX_JSON_BYTES", "file_name", "inside", "input_file", "read_bytes", "read_text",
           "output_file", "check_output_folder"]

# Recipes, profiles, manifests, synsets, labels, keys: a few KB to a few MB in practice.
MAX_TEXT_BYTES = 16 * 2**20
# JSON data files: COCO's val2017 instances file is 25 MB, results files with evidence a few MB.
MAX_JSON_BYTES = 512 * 2**20
# Kernel filesystems: their files look regular but are endless, blocking or have side effects.
_KERNEL_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


def file_name(name: str, what: str) -> str:
    """``name`` if it is a plain file name (ConfigError, exit 2, otherwise)."""
    if (not name or name in {".", ".."} or "/" in name or "\\" in name or "\0" in name
            or name != name.strip() or len(name.encode()) > 200):
        raise ConfigError(f"{what} {name!r}: a file name is expected (no folders, no '..', at most 200 bytes)")
    return name


def inside(folder: str | Path, path: str | Path, what: str) -> Path:
    """``path`` (relative to ``folder`` unless absolute) if it resolves inside ``folder``; OutputDirError
    otherwise."""
    root = Path(folder).resolve()
    target = (root / path).resolve()
    if target != root and root not in target.parents:
        raise OutputDirError(f"{path}: {what} would be written outside {folder}; refused")
    return target


def _kernel_path(path: Path) -> bool:
    resolved = path.resolve()
    return any(resolved == root or root in resolved.parents for root in _KERNEL_ROOTS)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "a special file"


def input_file(path: str | Path, what: str, max_bytes: int | None = None) -> Path:
    """``path`` if it is a regular file of at most ``max_bytes``; InputFileError (one line, exit 3) naming the
    problem otherwise: missing, a folder, a special file, a kernel file, too large."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputFileError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputFileError(f"{path}: {what} is a folder, a file is expected")
    if not stat.S_ISREG(info.st_mode):
        raise InputFileError(f"{path}: {what} is {_kind(info.st_mode)}, a regular file is expected")
    if _kernel_path(path):
        raise InputFileError(f"{path}: {what} is a kernel file (/proc, /sys, /dev), a regular file is expected")
    if max_bytes is not None and info.st_size > max_bytes:
        raise InputFileError(f"{path}: {what} is {info.st_size / 2**20:.1f} MiB, more than the "
                             f"{max_bytes / 2**20:.0f} MiB a {what} may have")
    return path


def read_bytes(path: str | Path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> bytes:
    """The bytes of ``path`` (checked by input_file); a file that grows past the bound while read is refused."""
    path = input_file(path, what, max_bytes)
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    if len(data) > max_bytes:
        raise InputFileError(f"{path}: {what} is larger than the {max_bytes / 2**20:.0f} MiB a {what} may have")
    return data


def read_text(path: str | Path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """``path`` read as UTF-8 text, bounded; InputFileError if it is not text."""
    data = read_bytes(path, what, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputFileError(f"{path}: {what} is not UTF-8 text") from None


def output_file(path: str | Path, what: str) -> Path:
    """``path`` if a file may be written there: nothing, or a regular file, is there now (a folder, a FIFO or a
    device is refused), and it is not in a kernel filesystem."""
    path = Path(path)
    if _kernel_path(path.parent if not path.exists() else path):
        raise OutputDirError(f"{path}: {what} cannot be written into /proc, /sys or /dev")
    try:
        info = path.lstat()
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise OutputDirError(f"{path}: cannot write {what} ({exc.strerror or exc})") from None
    if stat.S_ISLNK(info.st_mode):
        return output_file(path.resolve(), what)
    if stat.S_ISDIR(info.st_mode):
        raise OutputDirError(f"{path}: a folder is in the way of the {what}")
    if not stat.S_ISREG(info.st_mode):
        raise OutputDirError(f"{path}: {_kind(info.st_mode)} is in the way of the {what}; refused")
    return path


def check_output_folder(path: str | Path) -> Path:
    """``path`` if a folder may be made or used there: not a kernel filesystem, not a file or special file."""
    path = Path(path)
    if _kernel_path(path):
        raise OutputDirError(f"{path}: an output folder cannot be in /proc, /sys or /dev")
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"{path}: exists and is not a folder")
    return path
