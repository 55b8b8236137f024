"""Atomic artifact writing: build under a temporary name, rename into place on success.

A reader never sees a file that looks complete but is not: an interrupted or
failed step leaves at most a ``.tmp-*`` file, which is removed on the way out.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgedeploy.core.errors import OutputDirError
from edgedeploy.core.paths import check_output_folder, output_file

__all__ = ["atomic_path", "atomic_write_text", "staging_dir", "output_dir", "FULL_OR_READ_ONLY"]

# OS errors that mean "the output place cannot take the data", not "edgedeploy has a bug"
# (write() and copyfile() raise them without a file name).
FULL_OR_READ_ONLY = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def output_dir(path: str | Path) -> Path:
    """``path`` created if needed; OutputDirError (one line, exit 3) naming it and the OS reason if
    it cannot be created or written."""
    path = check_output_folder(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(f"{path}: cannot write to this folder ({exc.strerror or exc})") from exc
    if not os.access(path, os.W_OK):
        raise OutputDirError(f"{path}: cannot write to this folder ({os.strerror(errno.EACCES)})")
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` if the block succeeds."""
    final = output_file(final, "output")
    output_dir(final.parent)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{final.name}.", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600 files; published files get the usual umask-based mode.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(final: str | Path, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text)


@contextmanager
def staging_dir(out_dir: str | Path) -> Iterator[Path]:
    """A private scratch folder inside ``out_dir`` (same filesystem, so renames are atomic)."""
    # The folders this call creates: a run that fails leaves none of them behind, empty.
    created = [folder for folder in (Path(out_dir), *Path(out_dir).parents) if not folder.exists()]
    out_dir = output_dir(out_dir)
    try:
        try:
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-stage-", dir=out_dir))
        except OSError as exc:
            raise OutputDirError(f"{out_dir}: cannot write to this folder ({exc.strerror or exc})") from exc
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        for folder in created:  # innermost first; rmdir refuses a folder with anything in it
            try:
                folder.rmdir()
            except OSError:
                break
