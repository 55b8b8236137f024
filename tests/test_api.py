"""The Python API: the README's example runs as written (in a fresh process, so `import edgedeploy` is all it
does), and the API's errors are the CLI's typed errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import edgedeploy
from edgedeploy.core.errors import ConfigError, EdgeDeployError

ROOT = Path(__file__).resolve().parents[1]


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


@pytest.mark.data
def test_the_readme_example_runs_as_written(tmp_path: Path, data_root: Path) -> None:
    code = _readme_example().replace("../shared/data", str(data_root))
    (tmp_path / "example.py").write_text(code)
    # Run as a user would from the repository root, where ../shared/data is the sample data.
    env = {**__import__("os").environ, "EDGEDEPLOY_DATA": str(data_root)}
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    path, size, agreement, weights = done.stdout.splitlines()[0].split(" ", 3)
    assert path == "artifacts/api/Sequential_96_int8.tflite" and (tmp_path / path).is_file()
    assert int(size) == (tmp_path / path).stat().st_size and float(agreement) >= 85 and weights == "{'int8': 3}"
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"\[\d\]", lines[1])
    agreement_line = re.fullmatch(r"agreement with the module: ([\d.]+)%", lines[2])
    assert agreement_line and float(agreement_line.group(1)) >= 85
    assert re.fullmatch(r"p50 [\d.]+ ms", lines[3])


def test_export_is_the_package_attribute_and_a_callable_module() -> None:
    import edgedeploy.exporter.pipeline  # noqa: F401  (a submodule import must not hide the function)

    assert callable(edgedeploy.export) and not hasattr(edgedeploy.export, "pipeline")


@pytest.mark.parametrize(("call", "message"), [
    (lambda: edgedeploy.export(torch.nn.Linear(2, 2), "onnx", input_shape=(1, 3, 8, 8), colour="red"),
     "unknown option colour"),
    (lambda: edgedeploy.export(42, "onnx"), "model is a int; expected an nn.Module"),
    (lambda: edgedeploy.export(torch.nn.Identity(), "onnx", example_input=torch.zeros(3, 8, 8)), "has rank 3"),
    (lambda: edgedeploy.export(torch.nn.Identity(), "onnx", example_input=torch.zeros(1, 3, 8, 8),
                               input_shape=(1, 3, 8, 8)), "not both"),
    (lambda: edgedeploy.export(torch.nn.Conv2d(3, 4, 1), "onnx"), "give the input size"),
    (lambda: edgedeploy.export(torch.nn.Conv2d(3, 4, 1), "onnx", input_shape=(1, 3, 8, 8),
                               preprocessing={"mean": (0.5,) * 3}), "preprocessing takes mean and std"),
    (lambda: edgedeploy.load("missing.tflite"), "model file not found"),
])
def test_api_errors_are_typed(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EdgeDeployError, match=message):
        call()


def test_a_module_export_leaves_the_callers_module_alone(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(4, 3)).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    result = edgedeploy.export(net, "onnx", input_shape=(1, 3, 16, 16), out=tmp_path, parity_images=4)
    assert result.precision["verified"] and result.parity["max_abs_diff"] < 1e-4
    assert net.training and all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    with pytest.raises(ConfigError, match="outputs 3 classes, not 5"):
        edgedeploy.export(net, "onnx", input_shape=(1, 3, 16, 16), out=tmp_path, num_classes=5)
