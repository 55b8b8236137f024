"""The README's install and test commands are exactly what CI runs, and its targets table is the registry's."""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _code_after(heading: str, text: str) -> str:
    section = text.split(f"## {heading}\n", 1)[1]
    return re.search(r"```\n(.*?)\n```", section, re.S).group(1).strip()


def test_ci_runs_the_readme_install_and_test_commands():
    readme = (ROOT / "README.md").read_text()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    install, test = _code_after("Install", readme), _code_after("Tests", readme)
    assert install == 'python -m pip install -c constraints.txt "torch==2.13.0" -e ".[all,test]"'
    assert test == "python -m pytest -q"
    assert install in ci_lines and test in ci_lines
    assert ci_lines.index(install) < ci_lines.index(test)
    assert "python3 -m venv .ci-venv" in ci_lines


def test_readme_targets_table_lists_every_registered_target():
    # The registry as users see it (`edgedeploy list --json`), not an internal module path.
    listed = subprocess.run([sys.executable, "-m", "edgedeploy", "list", "--json"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert listed.returncode == 0, listed.stderr[-2000:]
    targets = json.loads(listed.stdout)["targets"]
    assert len(targets) >= 14, sorted(targets)
    readme = (ROOT / "README.md").read_text()
    table = {m.group(1) for m in re.finditer(r"^\| `([a-z0-9-]+)` \|.*\| available \|$", readme, re.M)}
    assert table == set(targets), (sorted(set(targets) - table), sorted(table - set(targets)))


def test_core_install_does_not_pull_tensorflow():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    assert "tensorflow" not in core and "onnx2tf" not in core and "openvino" not in core
    extras = project["optional-dependencies"]
    # onnx2tf imports these without declaring them; the extra must.
    for needed in ("tf_keras", "onnx_graphsurgeon", "sng4onnx", "psutil", "ai-edge-litert", "onnx2tf", "tensorflow"):
        assert any(dep.startswith(needed) for dep in extras["tflite"]), needed
