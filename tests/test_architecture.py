"""The package's shape: the import-layer contract (import-linter, configured in pyproject.toml),
the torch-free path of `report`, `gate --results` and `compare`, and small modules."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "edgedeploy"
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")
# The heavy stacks that a results file needs none of.
HEAVY = ("torch", "onnx", "onnxruntime", "tensorflow", "openvino", "nncf", "ai_edge_litert")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("module, upward", [
    ("core/hashing.py", "edgedeploy.cli.render"),          # core reaching up to the CLI
    ("runtimes/litert/graph.py", "edgedeploy.runtimes.openvino.graph"),  # one runtime into another
    ("exporter/converters/litert/tflite.py", "edgedeploy.exporter.converters.onnxruntime.onnx_int8"),  # one route into another
    ("data/preprocess.py", "edgedeploy.models"),           # two independent siblings
])
def test_the_contract_catches_a_wrong_import(tmp_path, module, upward):
    """The check can fail: the same tree with one wrong import (inside a function, as lazy imports are) breaks it."""
    shutil.copytree(PACKAGE, tmp_path / "edgedeploy", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    with (tmp_path / "edgedeploy" / module).open("a") as f:
        f.write(f"\n\ndef _wrong() -> None:\n    import {upward}  # noqa: F401\n")
    result = _lint(tmp_path)
    assert result.returncode == 1 and "BROKEN" in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize("name", ["mobilenet_v2", "deeplabv3_mobilenet_v2"])
def test_report_gate_and_compare_on_results_files_do_not_import_torch(tmp_path, name):
    """A CI machine that only gates, compares and reports needs no ML stack: no such command imports one, for a
    classification run or a segmentation run (whose tasks' metrics, evidence and statistics are numpy/scipy)."""
    baseline = REPO / "recipes" / "baselines" / f"{name}.json"
    recipe = REPO / "recipes" / f"{name}.yaml"
    script = f"""
import sys
from click.testing import CliRunner
from edgedeploy.cli.app import cli
runner = CliRunner()
report = runner.invoke(cli, ["report", {str(baseline)!r}, "--out", {str(tmp_path / "report")!r}, "--json"])
gate = runner.invoke(cli, ["gate", {str(recipe)!r}, "--results", {str(baseline)!r}, "--baseline", {str(baseline)!r},
                           "--json"])
compare = runner.invoke(cli, ["compare", {str(baseline)!r}, {str(baseline)!r}, "--json"])
loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)
print(report.exit_code, gate.exit_code, compare.exit_code, loaded)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "0 0 0 []", result.stdout[-2000:]
    assert (tmp_path / "report" / "report.html").is_file()


def test_no_module_is_long():
    """Small modules with one job: none over 400 lines."""
    long = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
