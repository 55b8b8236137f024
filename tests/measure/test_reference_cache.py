"""The float reference's outputs are computed once per (model, preprocessing, image content)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgedeploy.data.datasets import ImageFolder
from edgedeploy.measure.evaluate import evaluate
from edgedeploy.models.architecture import Architecture
from edgedeploy.runtimes import LoadOptions
from edgedeploy.runtimes.torch.runner import TorchRunner


class Counting:
    """Counts the images a runner really computes."""

    def __init__(self, runner):
        self.runner, self.images = runner, 0
        original = runner.predict

        def predict(batch):
            self.images += len(batch)
            return original(batch)

        runner.predict = predict


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """A cache of this test's own (the session's is shared with every other test that evaluates)."""
    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_second_evaluation_reads_the_reference_from_the_cache(image_folder, data_root, cache):
    candidate = TorchRunner("sample", LoadOptions(threads=2))
    reference = Counting(TorchRunner("sample", LoadOptions(threads=2)))
    first = evaluate(candidate, ImageFolder.open(image_folder), reference.runner)
    assert reference.images == 2 and first.agreement == 100.0 and first.max_abs_diff == 0.0
    again = evaluate(candidate, ImageFolder.open(image_folder), reference.runner)
    assert reference.images == 2, "the second evaluation ran the reference again"
    assert (again.agreement, again.max_abs_diff) == (first.agreement, first.max_abs_diff)
    # A file with other content is another image; a copy under another name is the same one.
    tabby = next((image_folder / "n02123045").glob("*.bmp"))
    shutil.copy(tabby, tabby.with_name("copy.bmp"))
    parrot = next((image_folder / "n01440764").glob("*.jpg"))
    shutil.copy(data_root / "images" / "grace_hopper.bmp", parrot)
    evaluate(candidate, ImageFolder.open(image_folder), reference.runner)
    assert reference.images == 3
    assert len(list((cache / "reference-outputs").rglob("*.npy"))) == 3


def test_other_preprocessing_or_weights_miss_and_random_weights_are_not_cached(image_folder, data_root, cache):
    folder = ImageFolder.open(image_folder)
    candidate = TorchRunner("sample", LoadOptions(threads=2))
    imagenet = TorchRunner("sample", LoadOptions(threads=2, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)))
    assert imagenet.output_key() != candidate.output_key() is not None
    offgrid = TorchRunner("sample-offgrid", LoadOptions(threads=2))
    assert offgrid.output_key() not in (None, candidate.output_key())
    random = TorchRunner("random", LoadOptions(threads=2, architecture=Architecture(width=0.35, resolution=96)))
    assert random.output_key() is None
    counted = Counting(imagenet)
    evaluate(candidate, folder, counted.runner)
    evaluate(candidate, folder, counted.runner)
    assert counted.images == 2
    scores = evaluate(candidate, folder, offgrid)
    assert scores.agreement is not None and np.isfinite(scores.max_abs_diff)


def test_made_up_images_and_an_unwritable_cache_are_computed_not_cached(image_folder, data_root, tmp_path,
                                                                        monkeypatch):
    """Random pixels are not their paths' content; a cache folder that cannot be written costs nothing but time."""
    from edgedeploy.exporter.parity import _RandomPixels

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be")
    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(blocked))
    candidate = TorchRunner("sample", LoadOptions(threads=2))
    reference = Counting(TorchRunner("sample", LoadOptions(threads=2)))
    for _ in range(2):
        assert evaluate(candidate, ImageFolder.open(image_folder), reference.runner).agreement == 100.0
    assert reference.images == 4
    monkeypatch.setenv("EDGEDEPLOY_CACHE", str(tmp_path / "cache"))
    files = [(image_folder / "n02123045" / "cat.bmp", None)]  # a real file's path, made-up pixels
    pixels = _RandomPixels(image_folder, files, "random pixels", size=224)
    evaluate(candidate, pixels, reference.runner)
    assert reference.images == 5 and not (tmp_path / "cache" / "reference-outputs").exists()
