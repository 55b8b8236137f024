"""SSD-MobileNetV1 (Google's detector's weights) in one recipe run: a float and an int8 target built with
per-output parity, scored in COCO mAP against the float model on real COCO images with the paired bootstrap,
gated against its own results as a baseline (the evidence pairs images with variable-length detections), and
reported with every model's boxes drawn (rendered in headless Chromium)."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgedeploy.cli.app import cli

pytestmark = [pytest.mark.data]

RECIPE = """
name: ssd
model: {{arch: ssd_mobilenet_v1, weights: sample}}
calibration: {{data: {calib}, size: 8}}
evaluation: {{data: {coco}, limit: 12, batch_size: 4}}
bench: {{runs: 3, warmup: 1}}
thresholds: {{max_map_drop: 6.0, min_agreement: 80.0, confidence: 0.95}}
targets:
  onnx: {{parity: {{images: 4}}, thresholds: {{max_map_drop: 0.05, min_agreement: 99.5}}}}
  onnx-int8: {{parity: {{images: 4}}}}
"""


@pytest.fixture(scope="module")
def detection_run(tmp_path_factory: pytest.TempPathFactory, data_root: Path):
    coco = data_root / "detection" / "coco-val2017"
    if not (coco / "instances.json").is_file():
        pytest.skip(f"the shared COCO images are not at {coco}")
    folder = tmp_path_factory.mktemp("detection")
    recipe = folder / "ssd.yaml"
    recipe.write_text(RECIPE.format(calib=data_root / "imagenet-subset" / "calib", coco=coco))
    result = CliRunner().invoke(cli, ["run", str(recipe), "--out", str(folder / "out"), "--json"])
    assert result.exit_code == 0, result.output
    return recipe, json.loads(result.stdout), folder / "out"


def test_targets_are_scored_in_map_against_the_float_model(detection_run):
    _, results, out = detection_run
    assert results["task"] == "detection" and results["status"] == "ok"
    reference = results["reference"]["accuracy"]
    assert reference["n"] == 12 and reference["map"] > 10 and set(reference["class_ap"]) <= {str(i) for i in range(91)}
    onnx, int8 = results["targets"]["onnx"], results["targets"]["onnx-int8"]
    assert onnx["accuracy"]["map"] == reference["map"] and onnx["accuracy"]["agreement"] == 100.0
    assert onnx["accuracy"]["map_vs_float"] == 100.0
    assert 0 < int8["accuracy"]["map_vs_float"] < 100 and int8["accuracy"]["agreement"] >= 80
    manifest = json.loads((out / int8["manifest"]).read_text())
    assert set(manifest["parity"]["outputs"]) == {"box_encodings", "class_logits"}
    assert manifest["io_extra"]["detection"]["nms"]["max_detections"] == 10


def test_the_gate_pairs_images_with_the_baseline(detection_run, tmp_path):
    recipe, _, out = detection_run
    baseline = tmp_path / "baseline.json"
    shutil.copyfile(out / "results.json", baseline)
    shutil.copyfile(out / "results.evidence.npz", tmp_path / "baseline.evidence.npz")
    result = CliRunner().invoke(cli, ["gate", str(recipe), "--baseline", str(baseline), "--results",
                                      str(out / "results.json"), "--json"])
    assert result.exit_code == 0, result.output
    checks = json.loads(result.stdout)["checks"]
    drop = next(c for c in checks if c["target"] == "onnx-int8" and c["name"] == "map_drop")
    low, high = drop["interval"]
    assert low <= drop["value"] <= high
    again = next(c for c in checks if c["target"] == "onnx-int8" and c["name"] == "map_vs_baseline")
    assert again["value"] == 0.0


def test_the_report_draws_every_models_boxes(detection_run, tmp_path):
    _, results, out = detection_run
    pictures = results["pictures"]
    assert pictures["columns"] == ["ground truth", "pytorch", "onnx", "onnx-int8"] and len(pictures["rows"]) == 4
    html = (out / "report.html").read_text()
    assert html.count('class="picture"') == 4 * 4 and "<th>mAP %</th>" in html
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                    "--window-size=1400,6000", f"--screenshot={shot}", (out / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    # Boxes were decoded and drawn: the first category colour (person, id 1 -> (60, 180, 75)) outlines them.
    assert (np.abs(pixels - (60, 180, 75)).sum(-1) < 30).sum() > 2_000
