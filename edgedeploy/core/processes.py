"""Every process edgedeploy starts runs with a time limit: a hung tool (flatc on a crafted graph, pip on a stalled
mirror, gpgv) is an error naming it, never a hang. And a native loader that can abort on a malformed file
(std::terminate, a failed CHECK) meets each file first in a child process, so its crash is an error naming the
file, never the end of edgedeploy."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from pathlib import Path

from edgedeploy.core.errors import DependencyError, InputFileError

__all__ = ["run_tool", "probe_in_child"]

log = logging.getLogger(__name__)

# A loader reads a MobileNet in about a second; a slow disk or a large model stays well within this.
PROBE_TIMEOUT_S = 120
# The child: the probe imported and called on the file. An exception is a clean refusal (exit 0): the loader in
# edgedeploy's own process then gives its reason. Only a death (a signal, a native exit) condemns the file.
_CHILD = """import importlib, sys
module, _, name = sys.argv[1].partition(":")
probe = getattr(importlib.import_module(module), name)
try:
    probe(sys.argv[2])
except Exception:
    pass
"""
# What each file did to its loader's probe (None: it lived), by (path, size, mtime_ns, inode): once per process.
_VERDICTS: dict[tuple[str, int, int, int], str | None] = {}


def run_tool(argv: list[str], timeout_s: float, what: str, text: bool = True) -> subprocess.CompletedProcess:
    """``argv`` with its output captured; DependencyError (exit 5) naming ``what`` if it runs past ``timeout_s``
    (the child is killed)."""
    try:
        return subprocess.run(argv, capture_output=True, text=text, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise DependencyError(f"{what} ({Path(argv[0]).name}) did not finish within {timeout_s:.0f} s; "
                              "it was stopped") from None


def probe_in_child(path: Path, probe: str, kind: str, loader: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Let ``probe`` ("module:function", called with the file's path; it should import only what the loader needs)
    open ``path`` in a fresh interpreter before the same loader opens it here. InputFileError (exit 3), one line,
    if the child dies by a signal, exits non-zero or runs past ``timeout_s``:
    "<path>: not a valid <kind> file: the <loader> loader crashed on it (SIGABRT)"."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _VERDICTS:
        _VERDICTS[key] = _verdict(path, probe, loader, timeout_s)
    failure = _VERDICTS[key]
    if failure:
        raise InputFileError(f"{path}: not a valid {kind} file: the {loader} loader {failure}")


def _verdict(path: Path, probe: str, loader: str, timeout_s: float) -> str | None:
    """None if the probe lived through ``path``, else what happened to it."""
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, probe, str(path)], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"did not finish on it within {timeout_s:.0f} s (stopped)"
    if done.returncode == 0:
        return None
    # The native reason ("terminate called after ..."), for --verbose: the error itself stays one line.
    log.debug("%s loader on %s: %s", loader, path, done.stderr.decode(errors="replace")[-600:])
    return f"crashed on it ({_death(done.returncode)})"


def _death(returncode: int) -> str:
    if returncode > 0:
        return f"exit {returncode}"
    try:
        return signal.Signals(-returncode).name
    except ValueError:  # a real-time signal has no name
        return f"signal {-returncode}"
