"""`edgedeploy compare`: two runs side by side, on results and evidence files written by hand (the real
runs are compared in test_run.py)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgedeploy.cli.app import cli
from edgedeploy.core.errors import InputFileError
from edgedeploy.core.hashing import with_digest
from edgedeploy.recipes.compare import compare_results
from edgedeploy.recipes.evidence import Evidence, write_evidence
from edgedeploy.recipes.results import DIGEST_KEY, RESULTS_SCHEMA

N = 600
HOST = "x86_64 AMD EPYC, 2 logical CPUs, int8 features: avx2"


def evidence(lost=0, gained=0):
    """The float model right on 462 of 600 images; tflite-int8 loses ``lost`` of them and gains ``gained``."""
    labels = np.arange(N, dtype=np.int32)
    top5 = np.stack([labels + k for k in range(5)], axis=1).astype(np.int32)
    top5[:138, 0] += 7
    int8 = top5.copy()
    int8[138:138 + lost, 0] += 9
    int8[:gained, 0] = labels[:gained]
    return Evidence("classification", np.array([f"{i:064x}" for i in range(N)]), {"labels": labels, "top5": top5},
                    {"tflite-int8": {"labels": labels, "top5": int8}})


def run(lost=0, gained=0, median_ms=5.0, seed=0, host=HOST):
    samples = np.random.default_rng(seed).normal(median_ms, 0.2, 100).round(4).tolist()
    entry = {"status": "ok", "accuracy": {"top1": round(100 * (462 - lost + gained) / N, 4)},
             "latency": {"cpu": {"latency_ms": {"p50": float(np.median(samples))}, "samples_ms": samples}}}
    return {"schema": RESULTS_SCHEMA, "evaluation": {"fingerprint": "abc"}, "host": host,
            "targets": {"tflite-int8": entry}}


def only_target(comparison):
    (target,) = comparison.targets
    return target


def test_the_same_predictions_and_latency_within_the_margin_are_no_change():
    target = only_target(compare_results(run(), run(median_ms=5.1, seed=1), evidence(), evidence()))
    assert target.verdict == "no significant change" and target.accuracy.p_value == 1.0
    (cpu,) = target.latency
    assert cpu.verdict == "no significant change" and cpu.ratio.estimate == pytest.approx(1.02, abs=0.02)
    assert 1 / 1.1 < cpu.ratio.low < cpu.ratio.high < 1.1  # a 2% drift stays inside the 10% margin


def test_a_lost_point_and_a_half_is_significantly_worse_and_one_image_is_not():
    worse = only_target(compare_results(run(), run(12, 3), evidence(), evidence(12, 3)))
    assert worse.verdict == "significantly worse" and (worse.accuracy.lost, worse.accuracy.gained) == (12, 3)
    assert worse.accuracy.drop.estimate == 1.5
    one = only_target(compare_results(run(), run(1), evidence(), evidence(1)))
    assert one.verdict == "no significant change"
    better = only_target(compare_results(run(12, 3), run(), evidence(12, 3), evidence()))
    assert better.verdict == "significantly better"


def test_latency_beyond_the_margin_is_slower_or_faster():
    slower = compare_results(run(), run(median_ms=6.5, seed=1), evidence(), evidence())
    assert only_target(slower).latency[0].verdict == "slower" and slower.changed == ["tflite-int8"]
    faster = compare_results(run(), run(median_ms=3.5, seed=1), evidence(), evidence())
    assert only_target(faster).latency[0].verdict == "faster"


def test_latency_between_hosts_with_other_int8_features_is_not_compared():
    vnni = HOST.replace("avx2", "avx2 avx512_vnni")
    comparison = compare_results(run(), run(median_ms=2.0, host=vnni), evidence(), evidence())
    cpu = only_target(comparison).latency[0]
    assert cpu.verdict == "not comparable (hosts differ)" and cpu.ratio is None and comparison.changed == []
    assert "int8 features differ or are unknown (A: avx2; B: avx2 avx512_vnni)" in comparison.notes[0]


def test_runs_on_other_images_are_refused():
    other = run()
    other["evaluation"]["fingerprint"] = "def"
    with pytest.raises(InputFileError, match="evaluated on different images"):
        compare_results(run(), other, evidence(), evidence())


def test_without_evidence_accuracy_is_not_tested():
    target = only_target(compare_results(run(), run(12, 3), None, evidence(12, 3)))
    assert target.verdict == "not tested (no per-image evidence)" and target.accuracy is None


def write_run(folder, results, ev):
    folder.mkdir()
    results = {**results, "evidence": write_evidence(ev, folder / "results.json")}
    (folder / "results.json").write_text(json.dumps(with_digest(results, DIGEST_KEY)))
    return str(folder / "results.json")


def test_compare_command_prints_a_table_and_one_json_object(tmp_path):
    a = write_run(tmp_path / "a", run(), evidence())
    b = write_run(tmp_path / "b", run(12, 3, median_ms=6.5, seed=1), evidence(12, 3))
    table = CliRunner().invoke(cli, ["compare", a, b])
    assert table.exit_code == 0, table.output
    assert "significantly worse" in table.stdout and "12/3" in table.stdout and "slower" in table.stdout
    assert "compare: 1 of 1 targets changed (tflite-int8)" in table.stdout
    result = CliRunner().invoke(cli, ["compare", a, b, "--json"])
    data = json.loads(result.stdout)
    assert data["changed"] == ["tflite-int8"] and data["targets"][0]["paired"]["lost"] == 12
    assert data["targets"][0]["latency"][0]["verdict"] == "slower"


def test_compare_of_a_missing_file_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json"])
    assert result.exit_code == 3 and json.loads(result.stdout)["error"].endswith("results file not found")
