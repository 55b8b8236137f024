"""The target registry: a new target on an existing runtime is one row and one converter function.
Registered, it is listed, exported from the command line and accepted in recipes with no other
module edited; its options are checked once, against its row."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.core.errors import ConfigError
from edgedeploy.exporter.choices import CalibMethod, IoDtype, Precision
from edgedeploy.exporter.context import Conversion, ExportContext
from edgedeploy.exporter.converters.common import conversion_failure
from edgedeploy.exporter.options import resolve_options
from edgedeploy.exporter.targets import TARGETS, ParityTolerance, Target, get_target, register_target
from edgedeploy.recipes.schema import RecipeError, load_recipe

SMALL_MODEL = ["--weights", "random", "--resolution", "96", "--width", "0.35", "--parity-images", "4"]


def copy_simplified_onnx(src: Path, dst: Path, ctx: ExportContext) -> Conversion:
    """What the ``onnx`` target does: the simplified graph is the artifact."""
    shutil.copyfile(src, dst)
    return Conversion(io=ctx.onnx_io, details={"converter": "copy"})


def failing_tool(src: Path, dst: Path, ctx: ExportContext) -> Conversion:
    """A converter whose third-party call fails after writing to the artifact's log."""
    ctx.log_path.write_text("toy tool: statistics collection failed\n")
    try:
        raise RuntimeError("the tool's own failure")
    except RuntimeError as exc:
        raise conversion_failure("toy tool", exc, ctx.log_path) from exc


def toy(name: str, converter) -> Target:
    return Target(name=name, description="toy: the simplified ONNX, copied", file_suffix="_toy.onnx",
                  runtime="onnxruntime", converter=converter,
                  parity=ParityTolerance(max_abs_diff=1e-3, min_agreement=99.0))


@pytest.fixture()
def register():
    """register_target for one test: the rows it adds are removed afterwards."""
    added = []

    def add(target: Target) -> Target:
        added.append(register_target(target))
        return target

    yield add
    for target in added:
        del TARGETS[target.name]


@pytest.fixture()
def onnx_toy(register):
    return register(toy("onnx-toy", copy_simplified_onnx))


def test_registered_target_is_listed(onnx_toy):
    result = CliRunner().invoke(cli, ["list", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["targets"]["onnx-toy"] == {
        "runtime": "onnxruntime", "suffix": "_toy.onnx", "description": "toy: the simplified ONNX, copied"}


def test_registered_target_exports_from_the_command_line(onnx_toy, tmp_path):
    result = CliRunner().invoke(cli, ["export", "--target", "onnx-toy", *SMALL_MODEL, "--out", str(tmp_path),
                                      "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["target"] == "onnx-toy" and out["path"] == str(tmp_path / "mobilenet_v2_0.35_96_toy.onnx")
    assert out["converter"] == "copy" and out["parity"]["max_abs_diff"] < 1e-3
    manifest = json.loads(Path(out["manifest"]).read_text())
    assert manifest["target"] == "onnx-toy" and manifest["precision"]["verified"]


def test_registered_target_is_accepted_in_recipes(onnx_toy, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: toy\nevaluation: {data: val}\ntargets:\n  onnx-toy:\n")
    loaded = load_recipe(recipe)
    assert list(loaded.spec.targets) == ["onnx-toy"]
    assert loaded.export_request("onnx-toy", tmp_path / "out", threads=1).target == "onnx-toy"
    # Its row decides its options, as for a built-in target.
    recipe.write_text("name: toy\nevaluation: {data: val}\ntargets:\n  onnx-toy:\n    io_dtype: uint8\n")
    with pytest.raises(RecipeError, match="targets.onnx-toy: io dtype uint8 does not apply to onnx-toy"):
        load_recipe(recipe)


def test_unregistered_target_is_gone(tmp_path):
    assert "onnx-toy" not in TARGETS
    result = CliRunner().invoke(cli, ["export", "--target", "onnx-toy", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "'onnx-toy' is not one of" in result.output


def test_register_refuses_a_taken_name_or_an_unknown_runtime():
    with pytest.raises(ConfigError, match="target 'onnx' is already registered"):
        register_target(TARGETS["onnx"])
    with pytest.raises(ConfigError, match="unknown runtime 'tvm'"):
        register_target(Target(name="tvm-fp32", description="", file_suffix=".so", runtime="tvm",
                               converter=copy_simplified_onnx, parity=ParityTolerance(1e-3, 99.0)))
    assert "tvm-fp32" not in TARGETS


def test_converter_failure_is_one_line_and_debug_shows_the_tool_traceback(register, tmp_path):
    register(toy("onnx-broken", failing_tool))
    args = ["export", "--target", "onnx-broken", *SMALL_MODEL, "--out", str(tmp_path), "--threads", "1"]
    log = tmp_path / "mobilenet_v2_0.35_96_toy.onnx.log"
    message = (f"error: toy tool failed (RuntimeError: the tool's own failure): "
               f"toy tool: statistics collection failed (log: {log})\n")

    plain = CliRunner().invoke(cli, args)
    assert plain.exit_code == 4 and plain.stderr == message
    assert log.is_file() and not (tmp_path / "mobilenet_v2_0.35_96_toy.onnx").exists()

    debug = CliRunner().invoke(cli, ["--debug", *args])
    assert debug.exit_code == 4 and debug.stderr.endswith(message)
    # The chain from the tool's own exception to the message the user sees, in order.
    trace = debug.stderr
    assert trace.index("RuntimeError: the tool's own failure") < trace.index("ConversionError: toy tool failed")
    assert trace.count("The above exception was the direct cause of the following exception") == 2
    assert f"(log: {log})" in trace.splitlines()[-2]


def test_options_are_checked_once_and_typed():
    onnx = resolve_options(get_target("onnx"), {})
    assert onnx.io_dtype is IoDtype.FLOAT32 and onnx.calib_method is None and onnx.ptq == ()
    int8 = get_target("tflite-int8")
    assert resolve_options(int8, {}).io_dtype is IoDtype.INT8
    assert resolve_options(int8, {"io_dtype": "uint8"}).io_dtype is IoDtype.UINT8
    # Layers kept float leave TFLite's IO float.
    assert resolve_options(int8, {"keep_float": ("a",)}).io_dtype is IoDtype.FLOAT32
    assert resolve_options(get_target("onnx-int8"), {}).calib_method is CalibMethod.MINMAX
    chosen = resolve_options(get_target("openvino-int8"), {"calib_method": "histogram", "max_drop": 0.5,
                                                           "val_dir": "val"})
    assert (chosen.calib_method, chosen.max_drop, chosen.val_dir) == (CalibMethod.HISTOGRAM, 0.5, Path("val"))
    with pytest.raises(ConfigError, match="tflite-int8 with --keep-float has float32 IO"):
        resolve_options(int8, {"io_dtype": "int8", "keep_float": ("a",)})
    with pytest.raises(ConfigError, match=r"max_drop must be in \(0, 100\], got 0"):
        resolve_options(get_target("openvino-int8"), {"max_drop": 0})
    with pytest.raises(ConfigError, match="--keep-float does not apply to onnx"):
        resolve_options(get_target("onnx"), {"keep_float": ("a",)})
    with pytest.raises(ConfigError, match="unknown export option colour"):
        resolve_options(get_target("onnx"), {"colour": "red"})


@pytest.mark.parametrize("name", list(TARGETS))
def test_every_target_names_its_float_baseline(name):
    """The float target a speed-up is quoted against is said by name in the row, never found by position."""
    target = get_target(name)
    baseline = get_target(target.float_baseline)
    assert baseline.runtime == target.runtime and baseline.precision is Precision.FP32
    assert (target.float_target is None) == (target.precision is Precision.FP32)


def test_register_refuses_a_quantized_target_without_a_float_baseline(register):
    int8 = Target(name="onnx-toy-int8", description="", file_suffix="_t.onnx", runtime="onnxruntime",
                  converter=copy_simplified_onnx, parity=ParityTolerance(None, 50.0, 10.0), precision=Precision.INT8)
    with pytest.raises(ConfigError, match="name its float baseline"):
        register(int8)
    with pytest.raises(ConfigError, match="must be a registered fp32 target of runtime onnxruntime"):
        register(Target(**{**int8.__dict__, "float_target": "tflite-fp32"}))
    assert register(Target(**{**int8.__dict__, "float_target": "onnx"})).float_baseline == "onnx"
