"""The gate's statistics on data where the answer is known: hand-made paired predictions, and seeded
simulations in which the intervals must cover the true value at the stated rate."""

import numpy as np
import pytest

from edgedeploy.core.stats import median_interval, paired_accuracy, ratio_of_medians

# Resamples per interval in the coverage simulations: enough for a 90% interval's ends, 5x faster than the default.
FAST = 1999


def pairs(n: int, lost: int, gained: int, both_wrong: int = 0):
    """Per-image correctness of a reference and a candidate with the given discordant counts."""
    ref = np.ones(n, bool)
    cand = np.ones(n, bool)
    cand[:lost] = False
    ref[lost:lost + gained] = False
    ref[lost + gained:lost + gained + both_wrong] = cand[lost + gained:lost + gained + both_wrong] = False
    return ref, cand


def test_ten_images_lost_and_none_gained_is_a_significant_loss():
    result = paired_accuracy(*pairs(600, lost=10, gained=0, both_wrong=130))
    assert (result.lost, result.gained, result.n) == (10, 0, 600)
    assert result.p_value == pytest.approx(2 * 0.5**10)  # McNemar exact: two-sided binomial, 10 of 10
    assert result.p_loss == pytest.approx(0.5**10)  # one-sided, for a loss
    assert result.drop.estimate == pytest.approx(100 * 10 / 600, abs=1e-4)
    assert 0 < result.drop.low < result.drop.estimate < result.drop.high
    assert result.significant_loss


def test_three_lost_and_two_gained_is_not_significant():
    result = paired_accuracy(*pairs(600, lost=3, gained=2, both_wrong=130))
    assert result.p_value == pytest.approx(1.0) and result.p_loss == pytest.approx(0.5)
    assert result.drop.estimate == pytest.approx(100 / 600, abs=1e-4)
    assert result.drop.low < 0 < result.drop.high
    assert not result.significant_loss


def test_gains_are_never_a_significant_loss():
    result = paired_accuracy(*pairs(600, lost=0, gained=10))
    assert result.p_value < 0.01 and result.p_loss == 1.0 and result.drop.estimate < 0 and not result.significant_loss


def test_identical_predictions_have_a_zero_width_interval():
    result = paired_accuracy(*pairs(600, lost=0, gained=0, both_wrong=138))
    assert (result.drop.estimate, result.drop.low, result.drop.high, result.p_value) == (0, 0, 0, 1.0)


def test_the_interval_is_the_same_every_time():
    ref, cand = pairs(600, lost=7, gained=3, both_wrong=100)
    assert paired_accuracy(ref, cand) == paired_accuracy(ref.copy(), cand.copy())


def test_unpaired_input_is_refused():
    with pytest.raises(ValueError, match="equal, non-empty"):
        paired_accuracy(np.ones(5, bool), np.ones(6, bool))
    with pytest.raises(ValueError, match="at least two samples"):
        median_interval([1.0])


def covered_share(seed: int, interval_of, truth: float, trials: int = 200) -> float:
    """The share of seeded trials whose 90% interval (``interval_of(rng, trial)``) holds ``truth``.
    Binomial noise of 200 trials at 0.9: sd 2.1 points; the tests allow about 3 sd."""
    rng = np.random.default_rng(seed)
    hits = 0
    for trial in range(trials):
        interval = interval_of(rng, trial)
        assert interval.low <= interval.estimate <= interval.high
        hits += interval.low <= truth <= interval.high
    return hits / trials


@pytest.mark.slow
def test_the_drop_interval_covers_the_true_drop_at_its_rate():
    """300 images, true drop 1.5 points (3% lost, 1.5% gained per image, 20% wrong in both)."""
    def drop(rng, trial):
        u = rng.random(300)
        ref, cand = u >= 0.2, u >= 0.2
        cand[(u >= 0.2) & (u < 0.23)] = False
        ref[(u >= 0.23) & (u < 0.245)] = False
        return paired_accuracy(ref, cand, confidence=0.9, seed=trial, resamples=FAST).drop

    assert 0.84 <= covered_share(15, drop, 1.5) <= 0.96


@pytest.mark.slow
def test_the_median_interval_covers_the_true_median_at_its_rate():
    share = covered_share(3, lambda rng, trial: median_interval(rng.lognormal(np.log(5.0), 0.1, 100), 0.9,
                                                                seed=trial, resamples=FAST), truth=5.0)
    assert 0.84 <= share <= 0.96


@pytest.mark.slow
def test_the_ratio_of_medians_covers_the_true_ratio_at_its_rate():
    share = covered_share(4, lambda rng, trial: ratio_of_medians(rng.lognormal(np.log(2.0), 0.1, 100),
                                                                 rng.lognormal(np.log(5.0), 0.1, 100), 0.9,
                                                                 seed=trial, resamples=FAST), truth=0.4)
    assert 0.84 <= share <= 0.96

