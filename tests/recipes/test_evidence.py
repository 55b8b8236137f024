"""The per-image evidence file: written and read back, pinned by its sha256, paired by image digest."""

import json

import numpy as np
import pytest

from edgedeploy.core.errors import ArtifactMismatchError, InputFileError
from edgedeploy.recipes.evidence import Evidence, Predictions, evidence_path, read_evidence, write_evidence


def evidence(n=6, lost=(), gained=(), order=None):
    """n images labeled 0..n-1; the float model right except on ``gained``, the target right except on ``lost``."""
    images = np.array([f"{i:064x}" for i in range(n)])
    labels = np.arange(n, dtype=np.int32)
    reference = np.tile(np.arange(5, dtype=np.int32), (n, 1)) + labels[:, None].astype(np.int32)
    target = reference.copy()
    for i in lost:
        target[i, 0] = 999
    for i in gained:
        reference[i, 0] = 999
    agree = (target[:, 0] == reference[:, 0]).astype(np.int64)
    order = np.arange(n) if order is None else np.asarray(order)
    return Evidence("classification", images[order], {"labels": labels[order], "top5": reference[order]},
                    {"tflite-int8": {"labels": labels[order], "top5": target[order], "agree": agree[order],
                                     "positions": np.ones(n, np.int64)}})


def correct(ev, target=None):
    records = ev.records(target)
    return records["top5"][:, 0] == records["labels"]


def test_written_evidence_reads_back_the_same(tmp_path):
    ev = evidence(lost=[1, 2], gained=[4])
    entry = write_evidence(ev, tmp_path / "results.json")
    assert entry["file"] == "results.evidence.npz" and entry["images"] == 6 and entry["targets"] == ["tflite-int8"]
    back = read_evidence({"evidence": json.loads(json.dumps(entry))}, tmp_path / "results.json")
    assert back.task == "classification" and np.array_equal(back.images, ev.images)
    assert np.array_equal(correct(back, "tflite-int8"), [True, False, False, True, True, True])
    assert np.array_equal(correct(back), [True, True, True, True, False, True])
    assert np.array_equal(back.records("tflite-int8")["agree"], [1, 0, 0, 1, 0, 1])
    paired = back.paired("tflite-int8", 0.95)
    assert (paired.lost, paired.gained, paired.test) == (2, 1, "McNemar")
    assert back.agreement("tflite-int8", 0.95).estimate == pytest.approx(50.0)


def test_results_without_evidence_or_without_the_file_read_as_none(tmp_path):
    assert read_evidence({"schema": "edgedeploy.results/1"}, tmp_path / "results.json") is None
    assert read_evidence({"evidence": {"sha256": "0" * 64}}, tmp_path / "results.json") is None


def test_a_changed_evidence_file_is_refused(tmp_path):
    entry = write_evidence(evidence(), tmp_path / "results.json")
    write_evidence(evidence(lost=[0]), tmp_path / "results.json")  # the same name, other content
    with pytest.raises(ArtifactMismatchError, match="sha256 differs"):
        read_evidence({"evidence": entry}, tmp_path / "results.json")


def test_a_baseline_keeps_its_evidence_under_its_own_name(tmp_path):
    entry = write_evidence(evidence(lost=[2]), tmp_path / "run" / "results.json")
    baseline = tmp_path / "baselines" / "mobilenet_v2.json"
    baseline.parent.mkdir()
    evidence_path(baseline).write_bytes((tmp_path / "run" / "results.evidence.npz").read_bytes())
    assert evidence_path(baseline).name == "mobilenet_v2.evidence.npz"
    assert not correct(read_evidence({"evidence": entry}, baseline), "tflite-int8")[2]


def test_target_names_with_dots_read_back(tmp_path):
    ev = evidence()
    cells = Evidence(ev.task, ev.images, ev.reference, {"w1.0-r160-onnx": ev.targets["tflite-int8"]})
    entry = write_evidence(cells, tmp_path / "m.json")
    assert read_evidence({"evidence": entry}, tmp_path / "m.json").has("w1.0-r160-onnx")


def test_evidence_is_paired_by_image_digest_not_by_position():
    ev = evidence(lost=[1])
    shuffled = evidence(lost=[1], order=[5, 3, 1, 0, 2, 4])
    aligned = shuffled.aligned_to(ev, "the baseline")
    assert np.array_equal(aligned.images, ev.images)
    assert np.array_equal(correct(aligned, "tflite-int8"), correct(ev, "tflite-int8"))


def test_evidence_on_other_images_cannot_be_paired():
    other = evidence(n=7)
    with pytest.raises(InputFileError, match="measured on other images"):
        other.aligned_to(evidence(), "the baseline")
    relabeled = evidence()
    relabeled.reference["labels"][0] = 3
    with pytest.raises(InputFileError, match="labels the same images differently"):
        relabeled.aligned_to(evidence(), "the baseline")
    segmentation = Evidence("segmentation", evidence().images, {}, {})
    with pytest.raises(InputFileError, match="is segmentation evidence, not classification"):
        segmentation.aligned_to(evidence(), "the baseline")


def test_predictions_round_trip_through_the_cache_file(tmp_path):
    records = {"labels": np.array([1, -1], np.int32), "top5": np.zeros((2, 5), np.int32)}
    preds = Predictions(np.array(["a" * 64, "b" * 64]), records)
    preds.save(tmp_path / "p.npz")
    back = Predictions.load(tmp_path / "p.npz")
    assert np.array_equal(back.images, preds.images) and np.array_equal(back.records["labels"], records["labels"])
    # One unlabeled image: no paired accuracy.
    assert Evidence.collect("classification", preds, {"onnx": back}).paired("onnx", 0.95) is None
