"""A tool edgedeploy starts is bounded in time: past its limit it is killed and named, never waited on."""

from __future__ import annotations

import sys
import time

import pytest

from edgedeploy.core.errors import DependencyError
from edgedeploy.core.processes import run_tool


def test_a_tool_past_its_limit_is_stopped_and_named() -> None:
    start = time.monotonic()
    with pytest.raises(DependencyError, match=r"sleeping \(python.*\) did not finish within 1 s; it was stopped"):
        run_tool([sys.executable, "-c", "import time; time.sleep(60)"], 1, "sleeping")
    assert time.monotonic() - start < 30


def test_a_tool_within_its_limit_returns_its_output() -> None:
    done = run_tool([sys.executable, "-c", "print('ok')"], 60, "printing")
    assert done.returncode == 0 and done.stdout.strip() == "ok"
