"""A recipe whose accuracy is measured on the GPU (``evaluation.device: gpu``), run on SwiftShader, and gated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.core.sample_data import CALIB_DIR, VAL_DIR

pytestmark = pytest.mark.data


def _recipe(folder: Path, data_root: Path, device: str) -> Path:
    path = folder / "gpu.yaml"
    path.write_text("name: gpu\nmodel: {weights: sample, resolution: 96}\n"
                    f"calibration: {{data: {data_root / CALIB_DIR}, size: 8}}\n"
                    f"evaluation: {{data: {data_root / VAL_DIR}, limit: 16, device: {device}}}\n"
                    "bench: {runs: 3, warmup: 1, threads: 2, rounds: 1}\n"
                    "thresholds: {max_top1_drop: 0.5, min_agreement: 99}\ntargets:\n  tflite-fp32: {}\n")
    return path


def test_a_recipe_evaluated_on_the_gpu_is_gated(tmp_path, data_root, software_gpu):
    pytest.importorskip("onnx2tf", reason="needs the [tflite] extra")
    recipe = _recipe(tmp_path, data_root, "gpu")
    run = CliRunner().invoke(cli, ["run", str(recipe), "--out", str(tmp_path / "out"), "--json"])
    assert run.exit_code == 0, run.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["evaluation"]["device"] == "gpu"
    accuracy = results["targets"]["tflite-fp32"]["accuracy"]
    assert accuracy["execution"]["accelerator"] == "LiteRT GPU accelerator (WebGPU)" and accuracy["agreement"] >= 99
    gate = CliRunner().invoke(cli, ["gate", str(recipe), "--results", str(tmp_path / "out" / "results.json"), "--json"])
    assert gate.exit_code == 0, gate.output
    verdict = json.loads(gate.stdout)
    assert verdict["passed"] and {c["name"] for c in verdict["checks"]} >= {"top1_drop", "agreement"}


def test_an_evaluation_device_that_is_not_in_this_process_is_refused(tmp_path, data_root):
    for device, message in (("pixel", "pixel does not run in this process"), ("nope", "unknown device 'nope'")):
        result = CliRunner().invoke(cli, ["run", str(_recipe(tmp_path, data_root, device)), "--out", str(tmp_path)])
        assert result.exit_code == 2 and "evaluation.device" in result.stderr, result.stderr
        assert message in result.stderr
