"""A runner's metrics on a data set, and its agreement with a reference runner.

Images are decoded and preprocessed in small batches and metrics are accumulated as they stream by
(the runner's task's accumulator: edgedeploy.tasks), so memory stays flat in the number of images.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from edgedeploy.core.errors import DataError
from edgedeploy.core.io_spec import Outputs, Preprocessing
from edgedeploy.core.outputs import output_rows, take_rows
from edgedeploy.data.datasets import ImageSet, LabeledImage
from edgedeploy.data.preprocess import preprocess
from edgedeploy.measure.reference_cache import reference_outputs
from edgedeploy.runtimes.base import Runner
from edgedeploy.tasks import Accumulator, EvalResult, get_task

__all__ = ["EvalResult", "accumulate", "evaluate", "batches", "DEFAULT_BATCH"]

DEFAULT_BATCH = 16


def batches(images: Iterable[LabeledImage], size: int) -> Iterator[list[LabeledImage]]:
    batch: list[LabeledImage] = []
    for item in images:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def accumulate(
    runner: Runner,
    dataset: ImageSet,
    reference: Runner | Outputs | None = None,
    batch_size: int = DEFAULT_BATCH,
    on_progress: Callable[[int], None] | None = None,
    on_scores: Callable[[Outputs, list[LabeledImage]], None] | None = None,
) -> Accumulator:
    """The metric sums of ``runner`` on ``dataset`` (see ``evaluate``); sums of shards of one image
    set merge (``Accumulator.merge``) into the sums of the whole set."""
    acc = get_task(runner.io.task).accumulator().bind(runner.io)
    for batch in batches(dataset, batch_size):
        # Each model gets its own preprocessing; identical specs are computed once.
        cache: dict[Preprocessing, np.ndarray] = {}

        def inputs(spec: Preprocessing) -> np.ndarray:
            if spec not in cache:
                cache[spec] = np.stack([preprocess(item.image, spec) for item in batch])
            return cache[spec]

        scores = runner.predict(inputs(runner.io.preprocessing))
        if on_scores:
            on_scores(scores, batch)
        ref_probabilities = False
        if isinstance(reference, (np.ndarray, dict)):
            ref_scores = take_rows(reference, acc.n, acc.n + len(batch))
            if output_rows(ref_scores) != len(batch):
                raise DataError(f"{dataset.root}: the reference scores cover {output_rows(reference)} images, the data "
                                "has more")
        elif reference is not None:
            ref_scores = reference_outputs(reference, batch, inputs, cached=dataset.from_files)
            ref_probabilities = reference.io.output.probabilities
        else:
            ref_scores = None
        acc.update(scores, batch, ref_scores, (runner.io.output.probabilities, ref_probabilities))
        if on_progress:
            on_progress(len(batch))
    if acc.n == 0:
        raise DataError(f"{dataset.root}: none of the {len(dataset)} image files could be decoded")
    return acc


def evaluate(
    runner: Runner,
    dataset: ImageSet,
    reference: Runner | Outputs | None = None,
    batch_size: int = DEFAULT_BATCH,
    on_progress: Callable[[int], None] | None = None,
    on_scores: Callable[[Outputs, list[LabeledImage]], None] | None = None,
) -> EvalResult:
    """The task's metrics of ``runner`` (if labeled) and, with ``reference``, agreement and logit diffs.

    ``reference`` is a runner, or the outputs a runner produced on this same dataset
    (rows in iteration order), so one reference pass can serve many models.
    ``on_scores`` receives each batch's outputs as they are computed, with the batch's images
    (undecodable files are skipped, so rows and dataset files need not line up otherwise).
    """
    skipped_before = len(dataset.skipped)
    start = time.perf_counter()
    acc = accumulate(runner, dataset, reference, batch_size, on_progress, on_scores)
    return acc.result(len(dataset.skipped) - skipped_before, time.perf_counter() - start, reference is not None)
