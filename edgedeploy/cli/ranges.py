"""Bounded click types for every numeric option (ranges from edgedeploy.core.limits): an out-of-range, NaN or
infinite value is refused when the command line is parsed (one line, exit 2), before anything runs."""

from __future__ import annotations

import math
from typing import Any

import click

from edgedeploy.core import limits

__all__ = ["Finite", "THREADS", "RESOLUTION", "NUM_CLASSES", "WIDTH", "MEAN", "STD", "IMAGES", "SEED", "WORKERS",
           "DROP", "PERCENT", "ATOL", "RUNS", "WARMUP", "CONFIDENCE", "FIDELITY_DB", "PARITY_IMAGES", "opset_range"]


class Finite(click.FloatRange):
    """A FloatRange that also refuses NaN (it compares false with both bounds, so a plain range lets it through)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


THREADS = click.IntRange(1, limits.MAX_THREADS)
RESOLUTION = click.IntRange(limits.MIN_RESOLUTION, limits.MAX_RESOLUTION)
NUM_CLASSES = click.IntRange(1, limits.MAX_CLASSES)
WIDTH = Finite(limits.MIN_WIDTH, limits.MAX_WIDTH)
MEAN = Finite(-limits.MAX_MEAN, limits.MAX_MEAN)
STD = Finite(0, limits.MAX_STD, min_open=True)
IMAGES = click.IntRange(1, limits.MAX_IMAGES)
PARITY_IMAGES = click.IntRange(1, 10_000)
SEED = click.IntRange(0, limits.MAX_SEED)
WORKERS = click.IntRange(1, limits.MAX_WORKERS)
# A drop of a metric in points (top-1, mIoU): positive, at most the whole scale.
DROP = Finite(0, 100, min_open=True)
PERCENT = Finite(0, 100)
ATOL = Finite(0, limits.MAX_DIFF, min_open=True)
RUNS = click.IntRange(1, limits.MAX_RUNS)
WARMUP = click.IntRange(0, limits.MAX_WARMUP)
CONFIDENCE = Finite(0.5, 1, max_open=True)
FIDELITY_DB = Finite(-limits.MAX_FIDELITY_DB, limits.MAX_FIDELITY_DB)


def opset_range() -> click.IntRange:
    from edgedeploy.exporter.choices import MAX_OPSET, MIN_OPSET

    return click.IntRange(MIN_OPSET, MAX_OPSET)
