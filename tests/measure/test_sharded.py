"""Sharded evaluation merges into exactly the single-pass figures (real images, real PyTorch model)."""

import numpy as np
import pytest

from edgedeploy.data.datasets import ImageFolder
from edgedeploy.measure.evaluate import evaluate
from edgedeploy.measure.sharded import ShardResult, evaluate_shard, merge_shards, split_shards
from edgedeploy.models.architecture import Architecture
from edgedeploy.runtimes import LoadOptions, load_runner
from edgedeploy.tasks.classification import top5_classes


def test_split_shards_keeps_order_and_covers_every_file(val_dir):
    ds = ImageFolder.open(val_dir).subset(50)
    shards = split_shards(ds, 16)
    assert [len(s) for s in shards] == [16, 16, 16, 2]
    assert [f for s in shards for f in s.files] == ds.files


def test_merged_shards_equal_one_pass(val_dir, tmp_path):
    ds = ImageFolder.open(val_dir).subset(45)
    runner = load_runner("sample", LoadOptions(threads=1, architecture=Architecture(resolution=96)))
    rows: list[np.ndarray] = []
    # Shards are whole batches (a sweep requires it): every image sees the batches of the single pass, so
    # its logits are the same bits (a convolution's float result can depend on the batch it runs in).
    single = evaluate(runner, ds, batch_size=4, on_scores=lambda scores, _: rows.append(scores))
    # A "reference" that disagrees on some images: the model's logits with every 4th row's top-1 pushed down,
    # so agreement, KL and the diffs are not trivially 100 / 0.
    reference = np.concatenate(rows).copy()
    top1 = reference.argmax(1)
    reference[np.arange(0, len(reference), 4), top1[::4]] -= 50.0
    against = evaluate(runner, ds, reference, batch_size=4)
    assert 70 < against.agreement < 80 and against.max_abs_diff == pytest.approx(50.0)

    shards, start = [], 0
    for piece in split_shards(ds, 8):
        result = evaluate_shard(runner, piece, reference[start:start + len(piece)], batch_size=4)
        # Through the on-disk form a cache keeps, as a sweep reads it back.
        result.save(tmp_path / f"{start}.json")
        shards.append(ShardResult.load(tmp_path / f"{start}.json"))
        start += len(piece)
    merged, predictions = merge_shards(shards, with_reference=True)
    assert len(shards) == 6
    # Counts are exact: top-1, top-5 and agreement equal the single pass's to the last digit.
    for field in ("n", "top1", "top5", "agreement", "max_abs_diff", "skipped"):
        assert getattr(merged, field) == getattr(against, field), field
    # The float sums up to their summation order.
    for field in ("kl", "cosine", "mean_abs_diff"):
        assert getattr(merged, field) == pytest.approx(getattr(against, field), rel=1e-6), field
    assert single.top1 == merged.top1
    digests = ds.digests()
    assert predictions.images.tolist() == [digests[p] for p, _ in ds.files]
    assert predictions.records["labels"].tolist() == [label for _, label in ds.files]
    assert np.array_equal(predictions.records["top5"], top5_classes(np.concatenate(rows)))
