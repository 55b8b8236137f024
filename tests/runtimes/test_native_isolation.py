"""A malformed .pte cannot take edgedeploy down: ExecuTorch aborts the process (std::terminate) when a log line quotes
file bytes that are not UTF-8, so a file is loaded in edgedeploy only once a child process has loaded it and lived.
Files that would abort it go through the command line in a process of its own, so that a crash is observed, not
suffered."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("executorch", reason="needs the [executorch] extra")

from edgedeploy.cli.app import cli  # noqa: E402
from edgedeploy.core import processes  # noqa: E402
from edgedeploy.models.architecture import Architecture  # noqa: E402
from edgedeploy.runtimes import LoadOptions, load_runner  # noqa: E402

COMMANDS = {"inspect": ["inspect", "{x}"],
            "bench": ["bench", "{x}", "--runs", "1", "--warmup", "0", "--mean", "0.5", "0.5", "0.5", "--std", "0.5",
                      "0.5", "0.5"]}
CRASHED = "not a valid .pte file: the ExecuTorch loader crashed on it (SIGABRT)"
# Damage that kills ExecuTorch in-process: (made from the real .pte, what the user reads).
FATAL = {
    # Bytes 4..8, the program identifier, are not UTF-8: refused before any child starts.
    "random bytes": (lambda pte: np.random.default_rng(0).bytes(4096), "no ExecuTorch program identifier"),
    # A valid header and program; the operator ExecuTorch cannot find is logged in bytes that are not UTF-8.
    "header-valid garbage": (lambda pte: _replace(pte, b"aten::mean", b"aten::\xff\xfean"), CRASHED),
    "broken XNNPACK payload": (lambda pte: _replace(pte, b"XH00", b"XH\xff0"), CRASHED),
}


def _replace(pte: bytes, old: bytes, new: bytes) -> bytes:
    assert old in pte
    return pte.replace(old, new, 1)


def _args(command: str, model: object) -> list[str]:
    return [a.format(x=model) for a in COMMANDS[command]]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", FATAL)
def test_a_pte_that_kills_executorch_is_one_line_and_exit_3(small_pte, tmp_path, case, command):
    damage, reason = FATAL[case]
    bad = tmp_path / "model.pte"
    bad.write_bytes(damage(small_pte.path.read_bytes()))
    done = subprocess.run([sys.executable, "-m", "edgedeploy", *_args(command, bad)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 3, (done.returncode, done.stderr[-2000:])  # death by a signal is negative
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"error: {bad}: "), done.stderr
    assert reason in done.stderr and "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_a_truncated_pte_gives_executorchs_own_reason(small_pte, tmp_path, command):
    # ExecuTorch refuses it cleanly (the child lives), so it runs here: its reason must still be one line.
    bad = tmp_path / "model.pte"
    bad.write_bytes(small_pte.path.read_bytes()[:5000])
    result = CliRunner().invoke(cli, _args(command, bad))
    assert result.exit_code == 3, result.output
    assert result.stderr.count("\n") == 1 and "File size is too small" in result.stderr
    assert "Traceback" not in result.output


def test_a_pte_that_loads_but_cannot_run_is_refused_at_load(small_pte, tmp_path):
    # One byte of the XNNPACK graph (20949 bytes after its "XH00" header: found by fuzzing) makes the delegate
    # refuse to execute; the load's trial run turns that into one line instead of a failure mid-benchmark.
    pte = bytearray(small_pte.path.read_bytes())
    pte[pte.find(b"XH00") + 20949] ^= 0x80
    bad = tmp_path / "model.pte"
    bad.write_bytes(bytes(pte))
    result = CliRunner().invoke(cli, _args("bench", bad))
    assert result.exit_code == 3, result.output
    assert result.stderr.count("\n") == 1 and "loads it but cannot run it" in result.stderr, result.stderr


def test_a_valid_pte_is_probed_once_and_computes_as_before(small_pte, monkeypatch):
    probes = []
    verdict = processes._verdict
    monkeypatch.setattr(processes, "_VERDICTS", {})
    monkeypatch.setattr(processes, "_verdict", lambda *args: probes.append(args) or verdict(*args))
    runner = load_runner(str(small_pte.path), LoadOptions(threads=1))
    again = load_runner(str(small_pte.path), LoadOptions(threads=2))  # another pool size: the method loads again
    reference = load_runner("random", LoadOptions(architecture=Architecture(width=0.35, resolution=96)))
    images = np.random.default_rng(0).uniform(-1, 1, (2, 96, 96, 3)).astype(np.float32)
    assert np.abs(runner.predict(images) - reference.predict(images)).max() < 1e-3
    assert np.array_equal(again.predict(images), runner.predict(images))

    result = CliRunner().invoke(cli, ["inspect", str(small_pte.path), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["inputs"][0]["shape"] == [1, 3, 96, 96] and info["delegated_ops"]["DepthwiseConv2d"] == 17
    assert info["weight_dtypes"] == {"fp32": 53} and info["verified"] is True
    assert len(probes) == 1
