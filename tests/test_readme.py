"""The README's install and test commands are exactly what CI runs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _code_after(heading: str, text: str) -> str:
    section = text.split(f"## {heading}\n", 1)[1]
    return re.search(r"```\n(.*?)\n```", section, re.S).group(1).strip()


def test_ci_runs_the_readme_install_and_test_commands():
    readme = (ROOT / "README.md").read_text()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    install, test = _code_after("Install", readme), _code_after("Tests", readme)
    assert install == 'python -m pip install "torch==2.13.0" -e ".[all,test]"'
    assert install in ci_lines and test in ci_lines
    assert ci_lines.index(install) < ci_lines.index(test)
    assert "python3 -m venv .ci-venv" in ci_lines


def test_readme_targets_table_lists_every_registered_target():
    from edgedeploy.export.targets import TARGETS

    readme = (ROOT / "README.md").read_text()
    for name in TARGETS:
        assert re.search(rf"\| `{name}` \|.*\| available \|", readme), name


def test_core_install_does_not_pull_tensorflow():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    assert "tensorflow" not in core and "onnx2tf" not in core and "openvino" not in core
    extras = project["optional-dependencies"]
    # onnx2tf imports these without declaring them; the extra must.
    for needed in ("tf_keras", "onnx_graphsurgeon", "sng4onnx", "psutil", "ai-edge-litert", "onnx2tf", "tensorflow"):
        assert any(dep.startswith(needed) for dep in extras["tflite"]), needed
