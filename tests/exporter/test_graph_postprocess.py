"""``--postprocess graph`` and the NMS options through the export: the artifact's graph decodes and suppresses
itself, its manifest says so and records the check against the host post-processing, eval reads it; targets
without the operator, LiteRT's multi-threaded per-class NMS, NMS options on a classifier and out-of-range values
are refused before anything is converted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.tasks.detection.postprocess import GRAPH_OUTPUTS

COCO = "detection/coco-val2017"


@pytest.fixture(scope="module")
def coco(data_root: Path) -> Path:
    if not (data_root / COCO / "instances.json").is_file() or not (data_root / "detection").is_dir():
        pytest.skip(f"the shared COCO images are not at {data_root / COCO}")
    return data_root / COCO


def _export(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["export", "--model", "ssd_mobilenet_v1", *args, "--json"])
    return result.exit_code, (json.loads(result.stdout) if result.stdout.strip() else {"output": result.output})


def test_onnx_graph_postprocessing_end_to_end(coco, tmp_path):
    code, out = _export("--target", "onnx", "--postprocess", "graph", "--max-detections", "5",
                        "--nms-iou-threshold", "0.5", "--parity-data", str(coco / "images"), "--parity-images", "4",
                        "--out", str(tmp_path))
    assert code == 0, out
    manifest = json.loads(Path(out["manifest"]).read_text())
    assert [manifest["output"]["name"], *(o["name"] for o in manifest["more_outputs"])] == list(GRAPH_OUTPUTS)
    head = manifest["io_extra"]["detection"]
    assert head["postprocess"] == "graph" and head["nms"]["max_detections"] == 5 and head["nms"]["iou_threshold"] == 0.5
    check = manifest["postprocess"]
    assert check["where"] == "graph" and check["operator"] == "NonMaxSuppression"
    assert check["host_detections"] > 0 and check["agreement_with_host"] == 100.0
    assert manifest["export"]["options"]["postprocess"] == "graph"
    result = CliRunner().invoke(cli, ["eval", out["path"], "--data", str(coco), "--limit", "4", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["map"] is not None
    # Parity of the post-processed graph against the PyTorch model's raw heads: boxes, not raw outputs.
    verified = CliRunner().invoke(cli, ["verify", out["path"], "--data", str(coco / "images"), "--images", "2", "--json"])
    assert verified.exit_code == 0, verified.output


@pytest.mark.parametrize(("args", "message"), [
    (["--target", "executorch-fp32", "--postprocess", "graph"], "executorch-fp32 has no detection post-processing"),
    (["--target", "tflite-fp32", "--postprocess", "graph", "--nms-mode", "per-class"], "drops a class"),
])
def test_graph_postprocessing_refused_where_the_runtime_cannot(coco, tmp_path, args, message):
    code, out = _export(*args, "--out", str(tmp_path))
    assert code == 2 and message in out["error"], out
    assert not any(tmp_path.iterdir())


def test_nms_options_are_for_detectors_and_range_checked(tmp_path):
    result = CliRunner().invoke(cli, ["export", "--target", "onnx", "--weights", "random", "--resolution", "96",
                                      "--width", "0.35", "--nms-iou-threshold", "0.5", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--nms-iou-threshold apply to detection models" in result.output
    for flag, value in (("--nms-iou-threshold", "0"), ("--max-detections", "0"), ("--nms-score-threshold", "1.5")):
        result = CliRunner().invoke(cli, ["export", "--model", "ssd_mobilenet_v1", "--target", "onnx", flag, value,
                                          "--out", str(tmp_path)])
        assert result.exit_code == 2, (flag, result.output)
