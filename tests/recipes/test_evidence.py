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
    ev = Evidence(images, labels, reference, {"tflite-int8": target})
    if order is not None:
        ev = Evidence(images[order], labels[order], reference[order], {"tflite-int8": target[order]})
    return ev


def test_written_evidence_reads_back_the_same(tmp_path):
    ev = evidence(lost=[1, 2], gained=[4])
    entry = write_evidence(ev, tmp_path / "results.json")
    assert entry["file"] == "results.evidence.npz" and entry["images"] == 6 and entry["targets"] == ["tflite-int8"]
    back = read_evidence({"evidence": json.loads(json.dumps(entry))}, tmp_path / "results.json")
    assert np.array_equal(back.images, ev.images) and np.array_equal(back.labels, ev.labels)
    assert np.array_equal(back.correct("tflite-int8"), [True, False, False, True, True, True])
    assert np.array_equal(back.correct(), [True, True, True, True, False, True])
    assert np.array_equal(back.agrees("tflite-int8"), [True, False, False, True, False, True])
    with np.load(tmp_path / "results.evidence.npz") as raw:  # "whether it matches the float model" is stored too
        assert np.array_equal(raw["target.tflite-int8.agrees"], back.agrees("tflite-int8"))


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
    assert not read_evidence({"evidence": entry}, baseline).correct("tflite-int8")[2]


def test_evidence_is_paired_by_image_digest_not_by_position():
    ev = evidence(lost=[1])
    shuffled = evidence(lost=[1], order=[5, 3, 1, 0, 2, 4])
    aligned = shuffled.aligned_to(ev, "the baseline")
    assert np.array_equal(aligned.images, ev.images)
    assert np.array_equal(aligned.correct("tflite-int8"), ev.correct("tflite-int8"))


def test_evidence_on_other_images_cannot_be_paired():
    other = evidence(n=7)
    with pytest.raises(InputFileError, match="measured on other images"):
        other.aligned_to(evidence(), "the baseline")
    relabeled = evidence()
    relabeled.labels[0] = 3
    with pytest.raises(InputFileError, match="labels the same images differently"):
        relabeled.aligned_to(evidence(), "the baseline")


def test_predictions_round_trip_through_the_cache_file(tmp_path):
    preds = Predictions(np.array(["a" * 64, "b" * 64]), np.array([1, -1], np.int32), np.zeros((2, 5), np.int32))
    preds.save(tmp_path / "p.npz")
    back = Predictions.load(tmp_path / "p.npz")
    assert np.array_equal(back.images, preds.images) and np.array_equal(back.labels, preds.labels)
    assert Evidence.collect(preds, {"onnx": back}).labeled is False  # one unlabeled image: no paired accuracy
