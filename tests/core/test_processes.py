"""A tool edgedeploy starts is bounded in time: past its limit it is killed and named, never waited on. A native
loader meets each file first in a child process: its death there is a one-line input error, not edgedeploy's."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from edgedeploy.core.errors import DependencyError, InputFileError
from edgedeploy.core.processes import probe_in_child, run_tool


def test_a_tool_past_its_limit_is_stopped_and_named() -> None:
    start = time.monotonic()
    with pytest.raises(DependencyError, match=r"sleeping \(python.*\) did not finish within 1 s; it was stopped"):
        run_tool([sys.executable, "-c", "import time; time.sleep(60)"], 1, "sleeping")
    assert time.monotonic() - start < 30


def test_a_tool_within_its_limit_returns_its_output() -> None:
    done = run_tool([sys.executable, "-c", "print('ok')"], 60, "printing")
    assert done.returncode == 0 and done.stdout.strip() == "ok"


PROBES = """import os, time
def abort(path): os.abort()
def native_exit(path): os._exit(7)
def refuse(path): raise ValueError("not mine")
def hang(path): time.sleep(60)
def count(path):
    with open(path + ".probed", "a") as f:
        f.write("x")
"""


@pytest.fixture()
def probes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A module of probes the child can import, and a model file for them."""
    (tmp_path / "probes.py").write_text(PROBES)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    model = tmp_path / "m.bin"
    model.write_bytes(b"model")
    return model


@pytest.mark.parametrize("probe, death", [("abort", "SIGABRT"), ("native_exit", "exit 7")])
def test_a_loader_that_dies_in_the_child_is_a_one_line_input_error(probes: Path, probe: str, death: str) -> None:
    with pytest.raises(InputFileError) as error:
        probe_in_child(probes, f"probes:{probe}", ".bin", "Bin")
    assert str(error.value) == f"{probes}: not a valid .bin file: the Bin loader crashed on it ({death})"
    assert error.value.exit_code == 3


def test_a_loader_that_refuses_the_file_leaves_the_reason_to_the_loader_here(probes: Path) -> None:
    probe_in_child(probes, "probes:refuse", ".bin", "Bin")


def test_a_loader_that_hangs_is_stopped(probes: Path) -> None:
    start = time.monotonic()
    with pytest.raises(InputFileError, match=r"the Bin loader did not finish on it within 1 s \(stopped\)$"):
        probe_in_child(probes, "probes:hang", ".bin", "Bin", timeout_s=1)
    assert time.monotonic() - start < 30


def test_a_file_is_probed_once_until_it_changes(probes: Path) -> None:
    for _ in range(3):
        probe_in_child(probes, "probes:count", ".bin", "Bin")
    assert Path(f"{probes}.probed").read_text() == "x"
    probes.write_bytes(b"another model")
    probe_in_child(probes, "probes:count", ".bin", "Bin")
    assert Path(f"{probes}.probed").read_text() == "xx"
