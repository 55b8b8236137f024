"""Recipes: the shipped ones load, every mistake is named with its key and line, paths resolve."""

from pathlib import Path

import pytest

from edgedeploy.core.errors import InputFileError
from edgedeploy.recipes.schema import RecipeError, load_recipe

REPO = Path(__file__).resolve().parents[2]
MINIMAL = "name: r\nevaluation: {data: val}\ntargets:\n  onnx:\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "recipes").glob("*.yaml") if "sweep" not in p.name))
def test_shipped_recipes_load(name):
    recipe = load_recipe(REPO / "recipes" / name)
    assert recipe.spec.targets and recipe.spec.devices == ["cpu"]
    for target in recipe.spec.targets:
        limits = recipe.thresholds(target)
        assert limits.drop_limit(recipe.task) is not None and limits.min_agreement is not None


def test_main_recipe_has_every_target():
    from edgedeploy.exporter.targets import TARGETS

    recipe = load_recipe(REPO / "recipes" / "mobilenet_v2.yaml")
    routes = load_recipe(REPO / "recipes" / "mobilenet_v2_routes.yaml")
    # tflite-dynamic is an extra, not a product target; every product target is in a shipped recipe:
    # the ONNX routes in the main one, the direct PyTorch routes beside their onnx2tf rival.
    assert set(recipe.spec.targets) | set(routes.spec.targets) == set(TARGETS) - {"tflite-dynamic"}
    assert {t for t in TARGETS if TARGETS[t].source == "pytorch"} <= set(routes.spec.targets)
    assert recipe.thresholds("onnx-int8").max_top1_drop == 4.5  # override
    assert recipe.thresholds("onnx-int8").max_top1_regression == 0.3  # inherited
    assert recipe.thresholds("tflite-int8").max_size_mb == 4.0


@pytest.mark.parametrize(
    "text, message",
    [
        (MINIMAL + "    io_dtyp: int8\n", r"recipe.yaml:5: targets.onnx.io_dtyp: unknown key"),
        (MINIMAL + "  tflite-int9: {}\n", r"recipe.yaml:5: targets.tflite-int9: unknown target 'tflite-int9'"),
        ("name: r\nevaluation: {data: val}\nmodel:\n  width: wide\ntargets: {onnx: }\n",
         r"recipe.yaml:4: model.width: Input should be a valid number \(got 'wide'\)"),
        ("name: r\nevaluation: {data: val}\nmodel:\n  resolution: '224'\ntargets: {onnx: }\n",
         r"recipe.yaml:4: model.resolution: Input should be a valid integer"),
        ("name: r\nname: s\n", r"recipe.yaml:2: duplicate key 'name'"),
        ("name: ../escape\nevaluation: {data: val}\ntargets: {onnx: }\n", r"recipe.yaml:1: name: String should match"),
        ("name: r\nevaluation: {data: val}\ntargets: {tflite-int8: }\n",
         r"recipe.yaml:3: targets.tflite-int8: an int8 target needs a calibration set"),
        (MINIMAL + "    io_dtype: uint8\n", r"recipe.yaml:4: targets.onnx: io dtype uint8 does not apply to onnx"),
        (MINIMAL + "    keep_float: [a]\n", r"recipe.yaml:4: targets.onnx: --keep-float does not apply to onnx"),
        (MINIMAL + "    input_layout: nchw\n", r"recipe.yaml:4: targets.onnx: input layout nchw does not apply"),
        (MINIMAL + "    weight_granularity: per-tensor\n",
         r"recipe.yaml:4: targets.onnx: weight granularity per-tensor does not apply to onnx"),
        (MINIMAL + "    calib_method: histogram\n",
         r"recipe.yaml:4: targets.onnx: calibration method histogram does not apply to onnx"),
        ("name: r\nevaluation: {data: val}\ncalibration: {data: c}\ntargets:\n  openvino-int8: {max_drop: 0.5}\n",
         r"recipe.yaml:5: targets.openvino-int8.max_drop: needs accuracy_data"),
        ("name: r\nevaluation: {data: val}\ndevices: [cpu, pixel9]\ntargets: {onnx: }\n",
         r"recipe.yaml:3: devices.1: unknown device 'pixel9'"),
        ("name: r\nevaluation: {data: val}\npreprocessing: {mean: [0.5, 0.5, 0.5]}\ntargets: {onnx: }\n",
         r"recipe.yaml:3: preprocessing: give mean and std together"),
        ("name: r\nevaluation: {data: val}\nmodel: {resolution: 100}\ntargets: {onnx: }\n",
         r"recipe.yaml:3: model: input resolution 100 must be a multiple of 32"),
        ("name: r\ntargets: {onnx: }\n", r"recipe.yaml:1: evaluation: required key is missing"),
        ("name: r\nevaluation: {data: val}\ntargets: {}\n", r"recipe.yaml:3: targets: Dictionary should have at least 1"),
        (MINIMAL + "thresholds: {max_top1_drop: -1}\n", r"recipe.yaml:5: thresholds: Value error, max_top1_drop must be a number of points in \[0, 100\], got -1"),
        ("name: r\n  bad: [\n", r"recipe.yaml:2: not valid YAML"),
        ("- just\n- a list\n", r"recipe.yaml: a recipe is a YAML mapping"),
        ("", r"recipe.yaml: a recipe is a YAML mapping"),
    ],
)
def test_mistakes_name_the_key_and_line(tmp_path, text, message):
    with pytest.raises(RecipeError, match=message) as info:
        load_recipe(write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_several_problems_are_counted(tmp_path):
    with pytest.raises(RecipeError, match=r"and 1 more problems"):
        load_recipe(write(tmp_path, "name: r\nevaluation: {data: val}\ntargets: {onnx: }\nfoo: 1\nbar: 2\n"))


def test_yaml_cannot_construct_python_objects(tmp_path):
    marker = tmp_path / "pwned"
    text = f"!!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(RecipeError, match="could not determine a constructor"):
        load_recipe(write(tmp_path, text))
    assert not marker.exists()


def test_missing_recipe_is_a_file_error(tmp_path):
    with pytest.raises(InputFileError, match="recipe not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_paths_are_relative_to_the_recipe_and_data_prefix_to_the_data_root(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    data = tmp_path / "data"
    data.mkdir()
    (data / "mobilenet_v2_imagenet.pth").write_bytes(b"x")
    monkeypatch.setenv("EDGEDEPLOY_DATA", str(data))
    recipe = load_recipe(write(tmp_path / "sub", (
        "name: r\nmodel: {weights: ../w.pth}\ncalibration: {data: data:calib, size: 10, seed: 3}\n"
        "evaluation: {data: ../val}\ntargets:\n  tflite-int8:\n    io_dtype: uint8\n"
        "    parity: {images: 4, min_agreement: 50}\n")))
    monkeypatch.chdir("/")
    request = recipe.export_request("tflite-int8", tmp_path / "out", threads=1)
    assert request.weights == str(tmp_path / "w.pth")
    assert request.calib_dir == data / "calib" and (request.calib_size, request.calib_seed) == (10, 3)
    assert request.parity_data == tmp_path / "val"  # parity defaults to the evaluation data
    assert (request.io_dtype, request.parity_images, request.parity_min_agreement) == ("uint8", 4, 50)
    assert request.keep_float == ()
    assert load_recipe(write(tmp_path, MINIMAL)).weights == "sample"  # keywords are not paths


def test_target_thresholds_override_field_by_field(tmp_path):
    recipe = load_recipe(write(tmp_path, MINIMAL.replace("  onnx:\n", "  onnx:\n    thresholds: {min_agreement: 50}\n")
                               + "thresholds: {max_top1_drop: 1.0, min_agreement: 99}\n"))
    limits = recipe.thresholds("onnx")
    assert (limits.max_top1_drop, limits.min_agreement, limits.max_latency_ms) == (1.0, 50, None)


def test_devices_must_run_the_recipes_targets(tmp_path):
    with pytest.raises(RecipeError, match=r"recipe.yaml:3: devices.0: gpu does not run executorch models"):
        load_recipe(write(tmp_path, "name: r\nevaluation: {data: v}\ndevices: [gpu]\n"
                                    "targets: {onnx: , executorch-fp32: }\n"))
    # A phone runs a TFLite-only recipe (the float reference is benched only where PyTorch runs).
    assert load_recipe(write(tmp_path, "name: r\nevaluation: {data: v}\ndevices: [cpu, pixel]\n"
                                       "targets: {tflite-fp32: }\n")).spec.devices == ["cpu", "pixel"]


def test_keep_float_layers_reach_the_export_request(tmp_path):
    recipe = load_recipe(write(tmp_path, (
        "name: r\ncalibration: {data: c}\nevaluation: {data: val}\n"
        "targets:\n  tflite-int8:\n    keep_float: [tf.compat.v1.pad/Pad, tf.nn.relu6/Relu6]\n")))
    request = recipe.export_request("tflite-int8", tmp_path / "out", threads=1)
    assert request.keep_float == ("tf.compat.v1.pad/Pad", "tf.nn.relu6/Relu6")
