"""Statistics for gating: paired comparisons of two models on the same images (a bootstrap interval of
the drop with a paired test: McNemar's exact test for per-image correctness, the Wilcoxon signed-rank
test for per-image scores), bootstrap intervals of a ratio of sums over images (agreement), of a
median and of a ratio of medians (latency). Torch-free: numpy and scipy only.

Every interval comes from ``scipy.stats.bootstrap`` with a fixed seed, so the same evidence always
gives the same interval and the same verdict: a gate must not flap on its own resampling.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["Interval", "PairedComparison", "paired_accuracy", "paired_scores", "ratio_interval",
           "image_bootstrap", "median_interval", "ratio_of_medians", "DEFAULT_CONFIDENCE", "BOOTSTRAP_SEED",
           "RESAMPLES"]

# The confidence of reported intervals when a recipe asks for none.
DEFAULT_CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0
# scipy's default; fewer give coarser interval ends (simulations of coverage use fewer, for speed).
RESAMPLES = 9999
# Resamples per vectorized batch: 600 images x 2000 resamples of float64 is ~10 MB.
_BATCH = 2000


@dataclass(frozen=True)
class Interval:
    """A point estimate and its two-sided bootstrap interval at ``confidence``."""

    estimate: float
    low: float
    high: float
    confidence: float

    def to_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "confidence": self.confidence}

    def __str__(self) -> str:
        return f"[{self.low:.2f}, {self.high:.2f}]"


@dataclass(frozen=True)
class PairedComparison:
    """A candidate's metric against a reference's on the same images, in points (0-100).

    ``lost``: images where the candidate does worse than the reference (classification: the reference
    right, the candidate wrong); ``gained``: the reverse. Only these images carry information about a
    difference, and ``test`` is run on them."""

    n: int
    drop: Interval
    lost: int
    gained: int
    # The paired test's p-value, two-sided (any change) ...
    p_value: float
    # ... and one-sided (the candidate loses more than it gains): what a gate, which cares about losses, uses.
    p_loss: float
    # McNemar (per-image correctness) or Wilcoxon (per-image scores, e.g. IoU).
    test: str = "McNemar"

    @property
    def significant_loss(self) -> bool:
        """More images lost than gained, beyond what chance explains at the interval's confidence."""
        return self.p_loss < 1 - self.drop.confidence

    def to_dict(self) -> dict[str, object]:
        return {"n": self.n, "drop": self.drop.to_dict(), "lost": self.lost, "gained": self.gained,
                "p_value": self.p_value, "p_loss": self.p_loss, "test": self.test}

    def describe(self) -> str:
        return (f"{self.drop.confidence:.0%} CI {self.drop}, {self.lost} lost / {self.gained} gained, "
                f"{self.test} p={self.p_value:.3g} (one-sided, for a loss: {self.p_loss:.3g})")




def _bootstrap(samples: tuple[np.ndarray, ...], statistic: Callable[..., np.ndarray], confidence: float, seed: int,
               resamples: int) -> tuple[float, float]:
    result = stats.bootstrap(samples, statistic, vectorized=True, paired=False, confidence_level=confidence,
                             n_resamples=resamples, batch=_BATCH, method="percentile",
                             rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_accuracy(reference_correct: np.ndarray, candidate_correct: np.ndarray,
                    confidence: float = DEFAULT_CONFIDENCE, seed: int = BOOTSTRAP_SEED,
                    resamples: int = RESAMPLES) -> PairedComparison:
    """The top-1 drop (reference minus candidate, points) with its paired bootstrap interval and
    McNemar's exact p-value. Both arrays are per-image correctness on the same images, same order."""
    ref = np.asarray(reference_correct, dtype=bool)
    cand = np.asarray(candidate_correct, dtype=bool)
    if ref.shape != cand.shape or ref.ndim != 1 or not len(ref):
        raise ValueError(f"paired correctness needs two equal, non-empty 1-D arrays, got {ref.shape} and {cand.shape}")
    # Per-image difference in points: resampling it resamples the image pairs jointly.
    diff = 100.0 * (ref.astype(np.float64) - cand.astype(np.float64))
    lost, gained = int((ref & ~cand).sum()), int((~ref & cand).sum())
    drop = float(diff.mean())
    if np.all(diff == diff[0]):
        low = high = drop  # every resample is the same: the interval is the point
    else:
        low, high = _bootstrap((diff,), lambda d, axis: d.mean(axis=axis), confidence, seed, resamples)
    if lost + gained:
        p_value = float(stats.binomtest(lost, lost + gained, 0.5).pvalue)
        p_loss = float(stats.binomtest(lost, lost + gained, 0.5, alternative="greater").pvalue)
    else:
        p_value = p_loss = 1.0  # no discordant image: no evidence of any difference
    return PairedComparison(len(ref), Interval(round(drop, 4), round(low, 4), round(high, 4), confidence),
                            lost, gained, p_value, p_loss)


def image_bootstrap(n: int, statistic: Callable[[np.ndarray], np.ndarray], confidence: float = DEFAULT_CONFIDENCE,
                    seed: int = BOOTSTRAP_SEED, resamples: int = RESAMPLES, values_per_image: int = 1) -> Interval:
    """A statistic of a set of ``n`` images with its bootstrap interval over images.

    ``statistic(indices)`` takes image indices of shape (..., n) (a resample of the set per row) and
    returns the statistic per row: set-level figures such as mIoU (a ratio of sums over images, not a
    mean of per-image values) resample exactly. ``values_per_image`` (the size of what the statistic
    gathers per image) keeps a vectorized batch near 10 MB."""
    if n < 1:
        raise ValueError("an interval over images needs at least one image")
    estimate = float(statistic(np.arange(n)[None])[0])
    indices = np.arange(n)
    if n == 1:
        return Interval(round(estimate, 4), round(estimate, 4), round(estimate, 4), confidence)
    batch = max(1, min(_BATCH, 1_250_000 // (n * max(values_per_image, 1))))
    with warnings.catch_warnings():  # every resample equal: a degenerate but correct interval
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap((indices,), lambda i, axis: statistic(i), vectorized=True, paired=False,
                                 confidence_level=confidence, n_resamples=resamples, batch=batch,
                                 method="percentile", rng=np.random.default_rng(seed))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (np.isfinite(low) and np.isfinite(high)):
        low = high = estimate
    return Interval(round(estimate, 4), round(low, 4), round(high, 4), confidence)


def ratio_interval(numerator: np.ndarray, denominator: np.ndarray, confidence: float = DEFAULT_CONFIDENCE,
                   seed: int = BOOTSTRAP_SEED, resamples: int = RESAMPLES) -> Interval:
    """100 * sum(numerator) / sum(denominator) over images (e.g. agreeing pixels / pixels), in percent,
    with its bootstrap interval over images."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    return image_bootstrap(len(num), lambda i: 100.0 * num[i].sum(-1) / np.maximum(den[i].sum(-1), 1e-12),
                           confidence, seed, resamples)


def paired_scores(set_drop: Callable[[np.ndarray], np.ndarray], reference_scores: np.ndarray,
                  candidate_scores: np.ndarray, confidence: float = DEFAULT_CONFIDENCE, seed: int = BOOTSTRAP_SEED,
                  resamples: int = RESAMPLES, values_per_image: int = 1) -> PairedComparison:
    """A set-level drop (``set_drop(indices)``: reference minus candidate over the resampled images, in
    points) with its bootstrap interval, and the Wilcoxon signed-rank test on per-image scores (higher is
    better; ``lost``: images the candidate scores lower on)."""
    ref = np.asarray(reference_scores, dtype=np.float64)
    cand = np.asarray(candidate_scores, dtype=np.float64)
    if ref.shape != cand.shape or ref.ndim != 1 or not len(ref):
        raise ValueError(f"paired scores need two equal, non-empty 1-D arrays, got {ref.shape} and {cand.shape}")
    drop = image_bootstrap(len(ref), set_drop, confidence, seed, resamples, values_per_image)
    diff = ref - cand
    lost, gained = int((diff > 0).sum()), int((diff < 0).sum())
    if lost + gained:
        # Images with equal scores carry no sign ("wilcox": dropped, as McNemar drops concordant pairs).
        p_value = float(stats.wilcoxon(diff, zero_method="wilcox").pvalue) if lost + gained > 1 else 1.0
        p_loss = float(stats.wilcoxon(diff, zero_method="wilcox", alternative="greater").pvalue) \
            if lost + gained > 1 else 1.0
    else:
        p_value = p_loss = 1.0
    return PairedComparison(len(ref), drop, lost, gained, p_value, p_loss, test="Wilcoxon")


def median_interval(samples: list[float] | np.ndarray, confidence: float = DEFAULT_CONFIDENCE,
                    seed: int = BOOTSTRAP_SEED, resamples: int = RESAMPLES) -> Interval:
    """The median (p50) of timed samples with its bootstrap interval."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < 2:
        raise ValueError("an interval needs at least two samples")
    median = float(np.median(x))
    with warnings.catch_warnings():  # identical samples: a degenerate but correct interval
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        low, high = _bootstrap((x,), lambda s, axis: np.median(s, axis=axis), confidence, seed, resamples)
    return Interval(round(median, 4), round(low, 4), round(high, 4), confidence)


def ratio_of_medians(numerator: list[float] | np.ndarray, denominator: list[float] | np.ndarray,
                     confidence: float = DEFAULT_CONFIDENCE, seed: int = BOOTSTRAP_SEED,
                     resamples: int = RESAMPLES) -> Interval:
    """median(numerator) / median(denominator), e.g. int8 p50 / fp32 p50, with a two-sample
    bootstrap interval (each sample resampled on its own)."""
    a, b = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ValueError("a ratio interval needs at least two samples on each side")
    ratio = float(np.median(a) / np.median(b))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        low, high = _bootstrap((a, b), lambda x, y, axis: np.median(x, axis=axis) / np.median(y, axis=axis),
                               confidence, seed, resamples)
    return Interval(round(ratio, 4), round(low, 4), round(high, 4), confidence)
