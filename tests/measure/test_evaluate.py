"""Accuracy acceptance on the real val split (600 ImageNet images)."""

import numpy as np
import pytest

from edgedeploy.data.datasets import ImageFolder
from edgedeploy.measure.evaluate import evaluate
from edgedeploy.runtimes import LoadOptions, load_runner

# Reference figures from ../shared/data/README.md (PyTorch, Resize 256 + CenterCrop 224, mean/std 0.5).
REFERENCE_TOP1, REFERENCE_TOP5 = 77.00, 91.83


@pytest.mark.slow
def test_torch_and_onnxruntime_match_the_reference_accuracy(onnx_artifact, val_against_torch):
    # The session's PyTorch pass over the val split (its logits are ONNX Runtime's reference).
    torch_res = val_against_torch.torch
    ort_res = val_against_torch(onnx_artifact.path)
    assert torch_res.n == ort_res.n == 600
    assert abs(torch_res.top1 - REFERENCE_TOP1) <= 0.3
    assert abs(ort_res.top1 - REFERENCE_TOP1) <= 0.3
    assert abs(torch_res.top5 - REFERENCE_TOP5) <= 0.3
    assert ort_res.agreement >= 99.0
    assert ort_res.kl < 1e-6 and ort_res.cosine > 0.99999


def test_unlabeled_folder_gives_agreement_but_no_accuracy(tmp_path, data_root):
    import shutil

    for name in ("cat.bmp", "grace_hopper.bmp", "parrot.jpg"):
        shutil.copy(data_root / "images" / name, tmp_path / name)
    runner = load_runner("sample", LoadOptions(threads=2))
    res = evaluate(runner, ImageFolder.open(tmp_path), reference=runner)
    assert res.n == 3 and res.top1 is None and res.agreement == 100.0 and res.max_abs_diff == 0.0


def test_sample_photos_are_classified_as_documented(data_root, tmp_path):
    # ../shared/data/README.md: cat.bmp -> Egyptian cat (285), grace_hopper -> mortarboard (667), parrot -> macaw (88).

    from edgedeploy.data.preprocess import load_and_preprocess

    runner = load_runner("sample", LoadOptions(threads=2))
    images = np.stack([load_and_preprocess(data_root / "images" / n, runner.io.preprocessing)
                       for n in ("cat.bmp", "grace_hopper.bmp", "parrot.jpg")])
    scores = runner.predict(images)
    assert list(scores.argmax(1)) == [285, 667, 88]

