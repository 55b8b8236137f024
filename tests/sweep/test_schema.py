"""Sweep files: cells expanded from the matrix, and every bad file refused with its line before anything runs."""

from __future__ import annotations

import pytest

from edgedeploy.core.errors import ConfigError
from edgedeploy.sweep.schema import is_sweep_file, load_sweep

HEAD = """name: s
model: {weights: sample}
calibration: {data: data:imagenet-subset/calib, size: 16}
evaluation: {data: data:imagenet-subset/val, batch_size: 8}
thresholds: {max_top1_drop: 2.0}
"""


def _sweep(tmp_path, body: str, head: str = HEAD):
    path = tmp_path / "s.yaml"
    path.write_text(head + body)
    return path


def test_calib_method_multiplies_only_the_targets_that_take_it(tmp_path):
    sweep = load_sweep(_sweep(tmp_path, """matrix:
  width: [1.0, 0.75]
  resolution: [128]
  targets: [onnx, onnx-int8, openvino-int8, tflite-int8]
  calib_method: [minmax, percentile]
targets:
  onnx-int8: {thresholds: {max_size_mb: 4}}
sweep: {shard_images: 64}
"""))
    ids = [c.id for c in sweep.cells]
    # onnx (float) and tflite-int8 (calibration fixed by its converter): one cell per model; onnx-int8 both
    # methods; openvino-int8 offers minmax but not percentile.
    assert ids == ["w1.0-r128-onnx", "w0.75-r128-onnx",
                   "w1.0-r128-onnx-int8-minmax", "w1.0-r128-onnx-int8-percentile",
                   "w0.75-r128-onnx-int8-minmax", "w0.75-r128-onnx-int8-percentile",
                   "w1.0-r128-openvino-int8-minmax", "w0.75-r128-openvino-int8-minmax",
                   "w1.0-r128-tflite-int8", "w0.75-r128-tflite-int8"]
    assert sweep.model_ids == ["w1.0-r128", "w0.75-r128"]
    cell = sweep.cells[3]
    recipe = sweep.recipe(cell)
    assert list(recipe.spec.targets) == ["onnx-int8"] and recipe.spec.targets["onnx-int8"].calib_method == "percentile"
    assert recipe.config.width == 1.0 and recipe.config.resolution == 128
    # Per-target thresholds merge with the sweep's, as in a recipe.
    assert recipe.thresholds("onnx-int8").max_size_mb == 4 and recipe.thresholds("onnx-int8").max_top1_drop == 2.0
    assert is_sweep_file(sweep.path) and not is_sweep_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize("body, line, message", [
    ("matrix: {width: [1.0], resolution: [128], targets: [onnx, tflite-int9]}", 6, "tflite-int9"),
    ("matrix: {width: [1.0], resolution: [128], targets: [onnx-int8], calib_method: [histogram]}", 6,
     "none of histogram applies to onnx-int8"),
    ("matrix: {width: [1.0], resolution: [128, 128], targets: [onnx]}", 6, "listed twice"),
    ("matrix: {width: [1.0], resolution: [128], targets: [onnx]}\ntargets: {onnx-int8: {}}", 7,
     "not in matrix.targets"),
    ("matrix: {width: [1.0], resolution: [128], targets: [onnx]}\nsweep: {shard_images: 100}", 7,
     "multiple of evaluation.batch_size"),
    ("matrix: {width: [1.0], resolution: [128], targets: [onnx]}\ndevices: [cpu, pixel8]", 7, "devices"),
    ("matrix: {width: [1.0], resolution: [8], targets: [onnx]}", 6, "resolution 8: input resolution 8 must"),
    ("matrix: {width: [1.0], resolution: [128], targets: [onnx-int8], calib_method: [minmax]}\n"
     "targets: {onnx-int8: {io_dtype: uint8}}", 7, "cell w1.0-r128-onnx-int8-minmax"),
    ("matrix: {width: [1.0], resolution: [128]}", 6, "matrix.targets: required key is missing"),
])
def test_a_bad_sweep_file_names_its_line(tmp_path, body, line, message):
    with pytest.raises(ConfigError) as exc:
        load_sweep(_sweep(tmp_path, body + "\n"))
    assert f"s.yaml:{line}:" in str(exc.value) and message in str(exc.value)


def test_the_shipped_sweep_loads():
    from pathlib import Path

    sweep = load_sweep(Path(__file__).parents[2] / "recipes" / "mobilenet_v2_sweep.yaml")
    # 4 resolutions x (onnx, onnx-int8 x 2 methods, openvino-fp32, openvino-int8 x minmax)
    assert len(sweep.cells) == 20 and len(sweep.model_ids) == 4


@pytest.mark.parametrize("args, code, message", [
    (["sweep", "{missing}"], 3, "sweep not found"),
    (["sweep", "{recipe}"], 2, "mobilenet_v2.yaml:6: matrix: required key is missing"),
    (["gate", "{sweep}", "--results", "{baseline}"], 3, "not an edgedeploy sweep results file"),
    (["gate", "{sweep}", "--results", "{baseline}", "--baseline", "{baseline}"], 2, "--baseline and --targets apply"),
])
def test_bad_sweep_input_is_one_line_and_an_exit_code(tmp_path, args, code, message):
    from pathlib import Path

    from click.testing import CliRunner

    from edgedeploy.cli.app import cli

    repo = Path(__file__).parents[2] / "recipes"
    paths = {"missing": tmp_path / "nope.yaml", "recipe": repo / "mobilenet_v2.yaml",
             "sweep": repo / "mobilenet_v2_sweep.yaml", "baseline": repo / "baselines" / "mobilenet_v2.json"}
    result = CliRunner().invoke(cli, [a.format(**paths) for a in args])
    assert result.exit_code == code and message in result.stderr, result.output
    # The message is one line (the last: a usage error comes after click's usage lines).
    assert message in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.output
