"""A sweep of Mobile DeepLabv3 on a real local Ray runtime: cells evaluated in shards whose mIoU counts merge into
exactly the single-pass figures, fronts on mIoU, gated with the task's checks; the shipped sweep file (257 and
513 px, four routes) is valid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("ray", reason="needs the [sweep] extra (ray)")

from edgedeploy.cli.app import cli  # noqa: E402
from edgedeploy.core.sample_data import CALIB_DIR  # noqa: E402
from edgedeploy.measure.evaluate import evaluate  # noqa: E402
from edgedeploy.runtimes import LoadOptions, load_runner  # noqa: E402
from edgedeploy.sweep.engine import run_sweep  # noqa: E402
from edgedeploy.sweep.schema import load_sweep  # noqa: E402
from edgedeploy.tasks import get_task  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.data]

REPO = Path(__file__).resolve().parents[2]


def test_a_segmentation_sweep_merges_shards_exactly_and_gates_on_miou(tmp_path, data_root):
    voc = data_root / "segmentation" / "voc-samples"
    path = tmp_path / "seg_sweep.yaml"
    path.write_text(
        "name: seg_sweep\nmodel: {arch: deeplabv3_mobilenet_v2, weights: sample}\n"
        f"calibration: {{data: {data_root / CALIB_DIR}, size: 16}}\n"
        f"evaluation: {{data: {voc}, batch_size: 2}}\n"
        "bench: {runs: 3, warmup: 1}\n"
        "thresholds: {max_miou_drop: 5.0, min_agreement: 90}\n"
        "matrix: {width: [0.5], resolution: [129], targets: [onnx, onnx-int8]}\n"
        "sweep: {shard_images: 8}\n")
    sweep = load_sweep(path)
    results = run_sweep(sweep, tmp_path / "out", max_workers=2)
    assert results["task"] == "segmentation" and results["status"] == "ok", results["failed"]
    model = results["models"]["w0.5-r129"]
    assert model["shards"] == 2 and model["accuracy"]["classes"] == 12
    dataset = get_task("segmentation").open_dataset(voc)
    for cell_id, cell in results["cells"].items():
        assert cell["accuracy"]["shards"] == 2 and cell["accuracy"]["paired"]["test"] == "Wilcoxon"
        # The merged counts are the single pass's: one process, one thread, the same batches.
        runner = load_runner(str(tmp_path / "out" / cell["artifact"]), LoadOptions(threads=1))
        single = evaluate(runner, dataset, batch_size=2)
        assert cell["accuracy"]["miou"] == single.miou and cell["accuracy"]["pixel_accuracy"] == single.pixel_accuracy
    assert set(results["fronts"]) == {"miou_vs_size", "miou_vs_p50"}
    gate = CliRunner().invoke(cli, ["gate", str(path), "--results", str(tmp_path / "out" / "sweep.json"), "--json"])
    assert gate.exit_code == 0, gate.output
    assert {c["name"] for c in json.loads(gate.stdout)["checks"]} == {"miou_drop", "agreement"}


def test_the_shipped_segmentation_sweep_is_valid(data_root):
    sweep = load_sweep(REPO / "recipes" / "deeplabv3_mobilenet_v2_sweep.yaml")
    assert len(sweep.cells) == 16 and {c.resolution for c in sweep.cells} == {257, 513}
    assert sweep.recipe(sweep.cells[0]).task.name == "segmentation"
