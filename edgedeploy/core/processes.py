"""Every tool edgedeploy starts runs with a time limit: a hung tool (flatc on a crafted graph, pip on a stalled
mirror, gpgv) is an error naming it, never a hang."""

from __future__ import annotations

import subprocess
from pathlib import Path

from edgedeploy.core.errors import DependencyError

__all__ = ["run_tool"]


def run_tool(argv: list[str], timeout_s: float, what: str, text: bool = True) -> subprocess.CompletedProcess:
    """``argv`` with its output captured; DependencyError (exit 5) naming ``what`` if it runs past ``timeout_s``
    (the child is killed)."""
    try:
        return subprocess.run(argv, capture_output=True, text=text, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise DependencyError(f"{what} ({Path(argv[0]).name}) did not finish within {timeout_s:.0f} s; "
                              "it was stopped") from None
