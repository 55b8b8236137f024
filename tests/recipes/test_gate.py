"""The gate's verdicts on results files: pass, regression (exit 1), and fail-closed errors (exit 6).

The end-to-end proof (a real broken int8 export trips the gate, the real one passes)
is in test_workflow.py; these cover every rule on results written by hand.
"""

import copy
import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from edgedeploy.core.errors import ConfigError, InputFileError
from edgedeploy.recipes.evidence import Evidence
from edgedeploy.recipes.gate import check_results, write_junit
from edgedeploy.recipes.results import RESULTS_SCHEMA, read_results
from edgedeploy.recipes.schema import load_recipe

RECIPE = """name: g
evaluation: {data: val}
calibration: {data: calib}
thresholds: {max_top1_drop: 1.0, min_agreement: 95, max_top1_regression: 0.3}
targets:
  onnx: {thresholds: {max_size_mb: 14}}
  tflite-int8: {thresholds: {max_latency_ms: 8}}
"""


def target(top1, agreement, p50=5.0, size=4_000_000, status="ok"):
    if status != "ok":
        return {"status": status, "runtime": "litert", "stage": "export", "error": "parity failed", "exit_code": 4}
    return {"status": "ok", "runtime": "x", "size_bytes": size,
            "accuracy": {"top1": top1, "agreement": agreement, "top1_drop": round(77.0 - top1, 4)},
            "latency": {"cpu": {"latency_ms": {"p50": p50}}}}


def results(**targets):
    return {"schema": RESULTS_SCHEMA, "recipe": {"model": load_recipe_model()},
            "evaluation": {"fingerprint": "abc"}, "targets": targets}


def load_recipe_model():
    return {"arch": "mobilenet_v2", "width": 1.0, "resolution": 224, "num_classes": 1000, "weights": "sample"}


@pytest.fixture()
def recipe(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text(RECIPE)
    return load_recipe(path)


def verdicts(report):
    return {(c.target, c.name): c.status for c in report.checks}


def test_everything_within_limits_passes(recipe):
    report = check_results(recipe, results(onnx=target(77.0, 100.0, size=13_990_000), **{"tflite-int8": target(76.5, 96.0)}))
    assert report.exit_code == 0 and report.passed
    assert verdicts(report) == {("onnx", "top1_drop"): "pass", ("onnx", "agreement"): "pass", ("onnx", "size"): "pass",
                                ("tflite-int8", "top1_drop"): "pass", ("tflite-int8", "agreement"): "pass",
                                ("tflite-int8", "latency_p50[cpu]"): "pass"}


def test_a_threshold_exceeded_is_a_regression_with_the_numbers(recipe):
    report = check_results(recipe, results(onnx=target(77.0, 100.0), **{"tflite-int8": target(74.9, 90.0, p50=9.5)}))
    assert report.exit_code == 1
    failed = {c.name: c for c in report.checks if c.status == "fail"}
    assert set(failed) == {"top1_drop", "agreement", "latency_p50[cpu]"}
    assert failed["top1_drop"].value == 2.1 and failed["top1_drop"].limit == 1.0
    assert failed["top1_drop"].message == "2.10 pts > 1.00 pts"
    assert failed["agreement"].message == "90.00 % < 95.00 %"


def test_size_over_budget_fails(recipe):
    report = check_results(recipe, results(onnx=target(77.0, 100.0, size=15 * 2**20), **{"tflite-int8": target(77, 99)}))
    assert verdicts(report)[("onnx", "size")] == "fail" and report.exit_code == 1


def test_a_failed_target_fails_closed(recipe):
    report = check_results(recipe, results(onnx=target(77.0, 100.0), **{"tflite-int8": target(0, 0, status="failed")}))
    assert report.exit_code == 6
    error = [c for c in report.checks if c.status == "error"][0]
    assert error.target == "tflite-int8" and error.message == "failed at export: parity failed"


def test_a_target_missing_from_the_results_fails_closed(recipe):
    report = check_results(recipe, results(onnx=target(77.0, 100.0)))
    assert report.exit_code == 6
    assert verdicts(report)[("tflite-int8", "build")] == "error"


def test_errors_outrank_regressions(recipe):
    report = check_results(recipe, results(onnx=target(70.0, 100.0)))
    assert {c.status for c in report.checks} >= {"fail", "error"} and report.exit_code == 6


def test_only_limits_the_targets_checked(recipe):
    report = check_results(recipe, results(onnx=target(77.0, 100.0)), only=["onnx"])
    assert report.exit_code == 0 and {c.target for c in report.checks} == {"onnx"}


def test_baseline_regression_beyond_the_allowance_fails(recipe):
    base = results(onnx=target(77.0, 100.0), **{"tflite-int8": target(77.0, 97.0)})
    now = results(onnx=target(76.8, 100.0), **{"tflite-int8": target(76.5, 97.0)})
    report = check_results(recipe, now, base)
    checks = {c.target: c for c in report.checks if c.name == "top1_vs_baseline"}
    assert checks["onnx"].status == "pass" and checks["onnx"].value == pytest.approx(0.2)
    assert checks["tflite-int8"].status == "fail" and checks["tflite-int8"].value == 0.5
    assert checks["tflite-int8"].message == "top-1 76.50 vs baseline 77.00: 0.50 pts > 0.30 pts"
    assert report.exit_code == 1


def test_a_target_new_since_the_baseline_is_skipped_not_failed(recipe):
    base = results(onnx=target(77.0, 100.0))
    report = check_results(recipe, results(onnx=target(77.0, 100.0), **{"tflite-int8": target(77, 99)}), base)
    assert verdicts(report)[("tflite-int8", "top1_vs_baseline")] == "skip" and report.exit_code == 0


def test_baseline_on_other_data_is_an_error(recipe):
    base = results(onnx=target(77.0, 100.0))
    base["evaluation"]["fingerprint"] = "other"
    with pytest.raises(InputFileError, match="different evaluation data"):
        check_results(recipe, results(onnx=target(77.0, 100.0)), base)


def test_results_of_another_model_are_an_error(recipe):
    other = results(onnx=target(77.0, 100.0))
    other["recipe"]["model"] = {**load_recipe_model(), "width": 0.5}
    with pytest.raises(InputFileError, match="the results are for model"):
        check_results(recipe, other)


def test_a_target_without_thresholds_cannot_be_gated(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("name: g\nevaluation: {data: v}\ntargets: {onnx: , tflite-fp32: {thresholds: {max_top1_drop: 1}}}\n")
    with pytest.raises(ConfigError, match="no thresholds for onnx"):
        check_results(load_recipe(path), results())


@pytest.mark.parametrize("content, message", [
    (None, "results file not found"),
    ("{not json", "not a results file"),
    ('{"schema": "other"}', "not an edgedeploy results file"),
])
def test_bad_results_files(tmp_path, content, message):
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputFileError, match=message):
        read_results(path)


def test_junit_has_one_case_per_check_with_failures_and_errors(recipe, tmp_path):
    report = check_results(recipe, results(onnx=target(75.0, 100.0)))
    write_junit(report, tmp_path / "junit.xml")
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(report.checks) == int(suite.get("tests"))
    assert (suite.get("failures"), suite.get("errors")) == ("1", "1")
    failure = next(c for c in cases if c.find("failure") is not None)
    assert failure.get("classname") == "edgedeploy.g.onnx" and failure.get("name") == "top1_drop"
    assert failure.find("failure").get("message") == "2.00 pts > 1.00 pts"
    error = next(c for c in cases if c.find("error") is not None)
    assert error.get("classname") == "edgedeploy.g.tflite-int8"


def test_report_dict_is_json_serialisable(recipe):
    report = check_results(recipe, copy.deepcopy(results(onnx=target(77.0, 100.0))))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["exit_code"] == 6 and data["counts"]["error"] == 1 and not data["passed"]


def test_unknown_target_names_are_refused_not_silently_skipped(recipe):
    with pytest.raises(ConfigError, match="--targets onnx-int9: not in g.yaml"):
        check_results(recipe, results(onnx=target(77.0, 100.0)), only=["onnx-int9"])


def test_a_regression_allowance_alone_is_not_a_check(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("name: g\nevaluation: {data: v}\nthresholds: {max_top1_regression: 0.3}\ntargets: {onnx: }\n")
    with pytest.raises(ConfigError, match="no thresholds for onnx"):
        check_results(load_recipe(path), results(onnx=target(77.0, 100.0)))


# ------------------------------------------------------------ paired statistics on per-image evidence

STATS_RECIPE = """name: s
evaluation: {data: val}
calibration: {data: calib}
thresholds: {max_top1_drop: 1.0, max_top1_regression: 0.3, confidence: 0.95}
targets:
  tflite-fp32: {}
  tflite-int8: {}
"""


def stats_recipe(tmp_path, body=STATS_RECIPE):
    path = tmp_path / "s.yaml"
    path.write_text(body)
    return load_recipe(path)


def paired_evidence(lost=0, gained=0, n=600, wrong=138, images=None):
    """600 images, the float model wrong on ``wrong`` of them; tflite-int8 loses ``lost`` of the float model's
    right answers and gets ``gained`` of its wrong ones; tflite-fp32 is the float model."""
    labels = np.arange(n, dtype=np.int32) % 1000
    reference = np.stack([labels + k for k in range(5)], axis=1).astype(np.int32)
    reference[:wrong, 0] = (labels[:wrong] + 1) % 1000
    int8 = reference.copy()
    int8[wrong:wrong + lost, 0] = (labels[wrong:wrong + lost] + 2) % 1000
    int8[:gained, 0] = labels[:gained]
    images = images if images is not None else np.array([f"{i:064x}" for i in range(n)])
    return Evidence("classification", images, {"labels": labels, "top5": reference},
                    {"tflite-fp32": {"labels": labels, "top5": reference.copy()},
                     "tflite-int8": {"labels": labels, "top5": int8}})


def stats_results(lost=0, gained=0):
    top1 = round(100 * (462 - lost + gained) / 600, 4)
    return results(**{"tflite-fp32": target(77.0, 100.0), "tflite-int8": target(top1, 97.0)})


def check(report, target_name, name):
    return next(c for c in report.checks if (c.target, c.name) == (target_name, name))


def test_a_true_1_5_point_loss_is_caught_by_the_confidence_bound_gate(tmp_path):
    report = check_results(stats_recipe(tmp_path), stats_results(12, 3), evidence=paired_evidence(12, 3))
    drop = check(report, "tflite-int8", "top1_drop")
    assert drop.status == "fail" and report.exit_code == 1 and report.notes == []
    assert drop.value == 1.5 and drop.discordant == (12, 3) and drop.p_value == pytest.approx(0.0176, abs=1e-4)
    low, high = drop.interval
    assert 0 < low < 1.5 < high and high > 1.0
    assert drop.message.startswith("significant loss (one-sided McNemar p=0.0176 < 0.05) and upper bound")
    assert "12 lost / 3 gained" in drop.message and check(report, "tflite-fp32", "top1_drop").status == "pass"


@pytest.mark.parametrize("lost, gained, verdict", [
    (22, 11, "fail"),  # openvino-int8 calibrated on 50 images, 160 px: 1.83 points, one-sided p=0.040
    (6, 5, "pass"),    # tflite-int8 calibrated on 10 images: one image net, 11 discordant
    (9, 10, "pass"),   # tflite-int8 calibrated on 3 images: one image better
    (1, 0, "pass"),    # one image of difference
])
def test_discordant_counts_measured_on_real_damaged_exports(tmp_path, lost, gained, verdict):
    """The counts of real exports against the float model on the 600 val images (docs/commands/gate.md), max_top1_drop 1.0."""
    report = check_results(stats_recipe(tmp_path), stats_results(lost, gained), evidence=paired_evidence(lost, gained))
    assert check(report, "tflite-int8", "top1_drop").status == verdict


def test_a_drop_within_noise_fails_on_the_point_estimate_but_not_on_the_evidence(tmp_path):
    point = STATS_RECIPE.replace(", confidence: 0.95", "")
    # 14 lost, 7 gained: 1.17 points, one-sided McNemar p=0.095: not shown by 600 images.
    on_point = check(check_results(stats_recipe(tmp_path, point), stats_results(14, 7), evidence=paired_evidence(14, 7)),
                     "tflite-int8", "top1_drop")
    assert on_point.status == "fail" and on_point.message.startswith("1.17 pts > 1.00 pts; 95% CI [")
    on_evidence = check(check_results(stats_recipe(tmp_path), stats_results(14, 7), evidence=paired_evidence(14, 7)),
                        "tflite-int8", "top1_drop")
    assert on_evidence.status == "pass" and on_evidence.interval == on_point.interval
    assert "but no significant loss (one-sided McNemar p=0.0946 >= 0.05)" in on_evidence.message


@pytest.mark.parametrize("lost, point_verdict", [(1, "pass"), (2, "fail")])
def test_one_or_two_images_against_the_baseline_are_not_flagged(tmp_path, lost, point_verdict):
    """The default allowance (0.3) is two images: the point estimate flips at two, the paired test at neither."""
    now, before = stats_results(lost, 0), stats_results(0, 0)
    for body, verdict in ((STATS_RECIPE.replace(", confidence: 0.95", ""), point_verdict), (STATS_RECIPE, "pass")):
        report = check_results(stats_recipe(tmp_path, body), now, before, evidence=paired_evidence(lost),
                               baseline_evidence=paired_evidence())
        regression = check(report, "tflite-int8", "top1_vs_baseline")
        assert regression.status == verdict and regression.discordant == (lost, 0)
        assert regression.p_value == pytest.approx(0.5**lost)  # one-sided: all of ``lost`` images one way


def test_old_results_without_evidence_gate_on_point_estimates_with_a_note(tmp_path):
    report = check_results(stats_recipe(tmp_path), stats_results(12, 3), stats_results(0, 0))
    drop = check(report, "tflite-int8", "top1_drop")
    assert drop.status == "fail" and drop.message == "1.50 pts > 1.00 pts" and drop.interval is None
    assert len(report.notes) == 2 and all("gated on point estimates" in note for note in report.notes)
    assert report.to_dict()["notes"] == report.notes


def test_a_baseline_whose_images_differ_is_refused(tmp_path):
    other = np.array([f"{i + 1:064x}" for i in range(600)])
    with pytest.raises(InputFileError, match="baseline was measured on other images"):
        check_results(stats_recipe(tmp_path), stats_results(), stats_results(), evidence=paired_evidence(),
                      baseline_evidence=paired_evidence(images=other))


LATENCY_RECIPE = """name: s
evaluation: {data: val}
calibration: {data: calib}
thresholds: {max_latency_ratio: 0.6, max_latency_ms: 5.1}
targets:
  tflite-fp32: {}
  tflite-int8: {}
"""


def timed(target_entry, median_ms, seed):
    samples = np.random.default_rng(seed).normal(median_ms, 0.05 * median_ms, 100).round(4).tolist()
    target_entry["latency"]["cpu"] = {"latency_ms": {"p50": float(np.median(samples))}, "samples_ms": samples}
    return target_entry


@pytest.mark.parametrize("confidence, int8_ms, verdict", [
    (None, 5.0, "pass"), (None, 6.3, "fail"),    # ratio 0.50, 0.63: the point estimate decides
    (0.95, 6.1, "pass"),                         # ratio 0.61 > 0.6, but its interval reaches below it
    (0.95, 7.0, "fail"),                         # 0.70: the whole interval is above the limit
])
def test_the_latency_ratio_against_the_float_target(tmp_path, confidence, int8_ms, verdict):
    body = LATENCY_RECIPE if confidence is None else LATENCY_RECIPE.replace("}\ntargets", f", confidence: {confidence}}}\ntargets")
    runs = results(**{"tflite-fp32": timed(target(77, 100), 10.0, 1), "tflite-int8": timed(target(77, 97), int8_ms, 2)})
    report = check_results(stats_recipe(tmp_path, body), runs)
    ratio = check(report, "tflite-int8", "latency_ratio[cpu]")
    assert ratio.status == verdict and ratio.value == pytest.approx(int8_ms / 10, abs=0.03)
    assert ratio.interval[0] < ratio.value < ratio.interval[1]
    assert check(report, "tflite-fp32", "latency_ratio[cpu]").status == "skip"  # the denominator itself


def test_latency_p50_with_confidence_fails_only_when_the_whole_interval_is_over(tmp_path):
    body = LATENCY_RECIPE.replace("max_latency_ratio: 0.6, ", "").replace("}\ntargets", ", confidence: 0.95}\ntargets")
    runs = results(**{"tflite-fp32": timed(target(77, 100), 5.13, 1), "tflite-int8": timed(target(77, 97), 6.0, 2)})
    report = check_results(stats_recipe(tmp_path, body), runs)
    near = check(report, "tflite-fp32", "latency_p50[cpu]")
    assert near.status == "pass" and near.value > 5.1 > near.interval[0]  # over the limit, but not shown to be
    slow = check(report, "tflite-int8", "latency_p50[cpu]")
    assert slow.status == "fail" and slow.message.startswith(f"lower bound {slow.interval[0]:.2f} ms > 5.10 ms")


def test_a_latency_ratio_without_its_float_counterpart_fails_closed(tmp_path):
    runs = results(**{"tflite-fp32": target(77, 100, status="failed"), "tflite-int8": timed(target(77, 97), 5.0, 2)})
    report = check_results(stats_recipe(tmp_path, LATENCY_RECIPE), runs)
    ratio = check(report, "tflite-int8", "latency_ratio[cpu]")
    assert ratio.status == "error" and "no timed runs of tflite-int8 and tflite-fp32 on cpu" in ratio.message
