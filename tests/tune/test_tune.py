"""`edgedeploy tune` for real: every candidate built, evaluated against the float model with paired statistics
on the val split, judged on the upper bound of its drop, the accepted ones benched, the fastest kept; a budget
nothing meets exits 1 with the best found, the record still written; a second run (its builds as Ray tasks)
comes from the caches."""

import json

import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli

pytestmark = [pytest.mark.slow, pytest.mark.data]

pytest.importorskip("onnx2tf", reason="needs the [tflite] extra")


def tune(out, val_dir, *extra):
    return CliRunner().invoke(cli, ["tune", "--target", "tflite-int8", "--weights", "sample-offgrid",
                                    "--resolution", "96", "--weight-granularity", "per-tensor", "--val", str(val_dir),
                                    "--calib-size", "16", "--runs", "6", "--threads", "2", "--out", str(out), "--json",
                                    *extra])


@pytest.mark.long
def test_tune_rejects_over_budget_then_keeps_the_fastest_within(tmp_path, val_dir):
    strict = tune(tmp_path / "strict", val_dir, "--max-drop", "0.5")
    assert strict.exit_code == 1, strict.output
    assert "no candidate within 0.5 pts of top1: the best," in strict.stderr
    record = json.loads((tmp_path / "strict" / "tune.json").read_text())
    assert record["status"] == "none within budget" and record["chosen"] is None and record["artifact"] is None
    ids = [c["id"] for c in record["candidates"]]
    assert ids[:5] == ["default", "ptq-cle", "ptq-cle-bias-correction", "ptq-adaround",
                       "ptq-cle-adaround-bias-correction"]
    assert all(c["verdict"] == "rejected" and c["accuracy"]["interval"][1] > 0.5 for c in record["candidates"])
    drops = {c["id"]: c["accuracy"]["drop"] for c in record["candidates"]}
    # Per-tensor int8 of a float-trained model collapses; equalization and bias correction bring it back.
    assert drops["default"] > 10 and drops["ptq-cle-bias-correction"] < drops["default"] / 3
    assert record["best"]["drop"] == min(drops.values())

    pytest.importorskip("ray", reason="needs the [sweep] extra")
    # The candidates again, built as Ray tasks (the sweep machinery): from the build cache this time.
    loose = tune(tmp_path / "loose", val_dir, "--max-drop", "8", "--max-workers", "2")
    assert loose.exit_code == 0, loose.output
    chosen = json.loads(loose.stdout)
    accepted = [c for c in chosen["candidates"] if c["verdict"] == "accepted"]
    assert accepted and all(c["accuracy"]["interval"][1] <= 8 and c["p50_ms"] > 0 for c in accepted)
    fastest = min(accepted, key=lambda c: c["p50_ms"])
    assert chosen["chosen"] == fastest["id"] and fastest["kept"] is True
    assert all(c.get("cached") or c["accuracy"]["cached"] for c in chosen["candidates"] if c["status"] == "ok")
    artifact = tmp_path / "loose" / "mobilenet_v2_1.0_96_int8.tflite"
    assert chosen["artifact"] == str(artifact) and artifact.is_file()
    manifest = json.loads((tmp_path / "loose" / "mobilenet_v2_1.0_96_int8.tflite.manifest.json").read_text())
    assert manifest["export"].get("ptq", {}).get("methods", []) == fastest["options"].get("ptq", [])
    verified = CliRunner().invoke(cli, ["verify", str(artifact), "--json"])
    assert verified.exit_code == 0, verified.output


def test_tune_refuses_a_float_target_and_another_tasks_metric(tmp_path, val_dir):
    result = CliRunner().invoke(cli, ["tune", "--target", "onnx", "--val", str(val_dir), "--max-drop", "1",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2 and "onnx is not quantized" in result.stderr
    result = CliRunner().invoke(cli, ["tune", "--target", "onnx-int8", "--val", str(val_dir), "--max-drop", "1",
                                      "--metric", "miou", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--metric miou does not apply to mobilenet_v2" in result.stderr
