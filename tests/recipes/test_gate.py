"""The gate's verdicts on results files: pass, regression (exit 1), and fail-closed errors (exit 6).

The end-to-end proof (a real broken int8 export trips the gate, the real one passes)
is in test_workflow.py; these cover every rule on results written by hand.
"""

import copy
import json
import xml.etree.ElementTree as ET

import pytest

from edgedeploy.core.errors import ConfigError, InputFileError
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
