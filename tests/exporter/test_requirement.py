"""--max-drop with --val on any int8 target: the user's accuracy requirement, checked after parity."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli


@pytest.fixture(scope="module")
def small_val(tmp_path_factory, data_root):
    """The first 40 images of the val split, with the synsets beside them."""
    root = tmp_path_factory.mktemp("small-val")
    files = sorted((data_root / "imagenet-subset" / "val").rglob("*.JPEG"))[:40]
    for f in files:
        (root / "val" / f.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, root / "val" / f.parent.name / f.name)
    shutil.copy(data_root / "imagenet-subset" / "synsets.txt", root / "synsets.txt")
    return root / "val"


COMMON = ["export", "--target", "onnx-int8", "--weights", "sample-offgrid", "--resolution", "160", "--calib-size", "32",
          "--parity-images", "16", "--threads", "2"]


@pytest.mark.slow
def test_a_met_requirement_is_recorded_and_an_unmet_one_refuses_the_artifact(tmp_path, small_val):
    runner = CliRunner()
    ok = runner.invoke(cli, [*COMMON, "--max-drop", "10", "--val", str(small_val), "--out", str(tmp_path / "ok"),
                             "--json"])
    assert ok.exit_code == 0, ok.output
    result = json.loads(ok.stdout)
    requirement = json.loads((tmp_path / "ok" / "mobilenet_v2_1.0_160_int8.onnx.manifest.json").read_text())[
        "export"]["accuracy_requirement"]
    assert requirement == result["accuracy_requirement"]
    assert requirement["met"] and requirement["metric"] == "top1" and requirement["images"] == 40
    assert requirement["float"] - requirement["artifact"] == pytest.approx(requirement["paired"]["drop"]["estimate"])
    assert requirement["paired"]["drop"]["estimate"] <= 10

    # Per-tensor weights collapse the model: with the unusable floor lifted, the requirement still refuses it.
    refused = runner.invoke(cli, [*COMMON, "--weight-granularity", "per-tensor", "--parity-min-agreement", "0",
                                  "--max-drop", "1", "--val", str(small_val), "--out", str(tmp_path / "refused")])
    assert refused.exit_code == 4
    assert "accuracy requirement not met: top1 drop" in refused.output and "edgedeploy tune --target onnx-int8" in \
        refused.output
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").glob("*.onnx"))


def test_max_drop_needs_val_and_a_quantized_target(tmp_path):
    runner = CliRunner()
    no_val = runner.invoke(cli, ["export", "--target", "tflite-int8", "--max-drop", "1", "--out", str(tmp_path)])
    assert no_val.exit_code == 2 and "--max-drop needs --val DIR" in no_val.output
    float_target = runner.invoke(cli, ["export", "--target", "onnx", "--max-drop", "1", "--val", str(tmp_path)])
    assert float_target.exit_code == 2 and "does not apply to onnx" in float_target.output
