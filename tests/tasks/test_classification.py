"""The classification task's metrics and paired statistics."""

import numpy as np

from edgedeploy.tasks import get_task
from edgedeploy.tasks.classification import NO_LABEL, top5_classes


def test_top5_breaks_ties_like_argmax():
    """Quantized outputs tie often; per-image top-1 must be argmax's, or evidence and agreement disagree."""
    scores = np.random.default_rng(0).integers(-3, 3, (2000, 1000)).astype(np.float32)
    assert np.array_equal(top5_classes(scores)[:, 0], scores.argmax(axis=1))


def test_paired_is_mcnemar_on_correct_images_and_none_without_labels():
    task = get_task("classification")
    labels = np.arange(10, dtype=np.int32)
    right = np.tile(np.arange(5, dtype=np.int32), (10, 1)) + labels[:, None]
    wrong = right.copy()
    wrong[:3, 0] = 999
    paired = task.paired({"labels": labels, "top5": right}, {"labels": labels, "top5": wrong}, 0.95)
    assert paired.test == "McNemar" and (paired.lost, paired.gained) == (3, 0) and paired.drop.estimate == 30.0
    unlabeled = labels.copy()
    unlabeled[0] = NO_LABEL
    assert task.paired({"labels": unlabeled, "top5": right}, {"labels": unlabeled, "top5": wrong}, 0.95) is None
