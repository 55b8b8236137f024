"""Recipes take a user's module (model: {module, factory}) and an ONNX file (model: {onnx}) as well as a family:
the run's reference is that model (PyTorch, or ONNX Runtime on the file), and its content keys the caches."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from edgedeploy.core.errors import InputFileError, UserCodeError
from edgedeploy.core.yamlfile import ConfigFileError
from edgedeploy.recipes.run import reference_key, run_recipe
from edgedeploy.recipes.schema import load_recipe

pytestmark = [pytest.mark.data]

USER_MODULES = Path(__file__).resolve().parents[1] / "models" / "user_modules.py"
IMAGENET = "{{mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}}"
COMMON = """evaluation: {{data: {val}, limit: 24}}
calibration: {{data: {calib}, size: 16}}
bench: {{runs: 3, warmup: 1, threads: 2, rounds: 1}}
preprocessing: """ + IMAGENET + """
thresholds: {{max_top1_drop: 100, min_agreement: 0}}
"""


def _recipe(folder: Path, model: str, targets: str, val: Path, calib: Path) -> Path:
    path = folder / "recipe.yaml"
    path.write_text(f"name: byom\nmodel: {model}\n" + COMMON.format(val=val, calib=calib) + f"targets:\n{targets}")
    return path


def test_a_module_recipe_imports_the_module_beside_it_and_runs(tmp_path: Path, val_dir: Path, data_root: Path) -> None:
    shutil.copy(USER_MODULES, tmp_path / "my_models.py")  # beside the recipe, not on sys.path
    recipe = load_recipe(_recipe(tmp_path, "{module: my_models, factory: tiny_cnn, input_shape: [1, 3, 64, 64]}",
                                 "  onnx: {}\n  tflite-int8: {}\n", val_dir, data_root / "imagenet-subset/calib"))
    assert recipe.config.arch == "my_models:tiny_cnn" and recipe.config.resolution == 64
    results = run_recipe(recipe, tmp_path / "out")
    assert results["status"] == "ok", results
    assert results["reference"]["runtime"] == "torch" and results["reference"]["weights"] == "module"
    assert results["targets"]["onnx"]["accuracy"]["agreement"] == 100.0
    assert results["recipe"]["model"]["arch"] == "my_models:tiny_cnn"


def test_an_onnx_recipe_runs_against_onnx_runtime(tmp_path: Path, val_dir: Path, data_root: Path) -> None:
    import sys

    sys.path.insert(0, str(USER_MODULES.parent))
    from user_modules import TinyCNN

    torch.manual_seed(0)
    torch.onnx.export(TinyCNN().eval(), (torch.zeros(1, 3, 48, 48),), str(tmp_path / "net.onnx"), dynamo=False)
    path = _recipe(tmp_path, "{onnx: net.onnx}", "  onnx: {}\n  openvino-int8: {}\n", val_dir,
                   data_root / "imagenet-subset/calib")
    recipe = load_recipe(path)
    key = reference_key(recipe, "data")
    results = run_recipe(recipe, tmp_path / "out")
    assert results["status"] == "ok", results
    assert results["reference"]["runtime"] == "onnxruntime" and results["recipe"]["model"]["resolution"] == 48
    assert results["targets"]["onnx"]["accuracy"]["agreement"] == 100.0
    assert results["targets"]["onnx"]["accuracy"]["max_abs_diff"] < 1e-5
    # The file's content keys the reference: other weights, another key.
    torch.manual_seed(1)
    torch.onnx.export(TinyCNN().eval(), (torch.zeros(1, 3, 48, 48),), str(tmp_path / "net.onnx"), dynamo=False)
    assert reference_key(load_recipe(path), "data") != key


@pytest.mark.parametrize(("model", "targets", "message"), [
    ("{module: my_models}", "  onnx: {}\n", "model.factory: give module and factory together"),
    ("{onnx: net.onnx, width: 0.5}", "  onnx: {}\n", "model.width: does not apply to an ONNX model"),
    ("{onnx: net.onnx}", "  litert-fp32: {}\n", "targets.litert-fp32: converts from PyTorch, not ONNX"),
    ("{module: my_models, factory: raises, input_shape: [1, 3, 32, 32]}", "  onnx: {}\n", "the factory raised"),
    ("{module: my_models, factory: tiny_cnn, input_shape: [3, 32, 32]}", "  onnx: {}\n",
     "model.input_shape: List should have at least 4 items"),
])
def test_model_source_problems_name_the_recipe_line(tmp_path: Path, model: str, targets: str, message: str) -> None:
    shutil.copy(USER_MODULES, tmp_path / "my_models.py")
    path = _recipe(tmp_path, model, targets, tmp_path, tmp_path)
    with pytest.raises((ConfigFileError, InputFileError, UserCodeError), match=message.replace("(", r"\(")) as info:
        load_recipe(path)
    assert "recipe.yaml:" in str(info.value) or isinstance(info.value, InputFileError)
