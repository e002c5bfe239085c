"""Significance tests, the Holm correction and effect sizes."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from analysis.stats import (TestResult, apply_holm, effect_size_independent, effect_size_paired, holm,
                            mann_whitney, welch_t, wilcoxon_paired)


def test_holm_hand_worked_example():
    # Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → monotone: 0.02, 0.03, 0.06, 0.06.
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_skips_nan():
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])
    adjusted = holm([0.01, float("nan"), 0.04])  # m = 2, the NaN is not a comparison
    assert adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.04) and math.isnan(adjusted[1])
    assert holm([]).size == 0
    results = apply_holm([TestResult("a", 0.01), TestResult("b", 0.02)])
    assert [r.p_holm for r in results] == pytest.approx([0.02, 0.02])


@pytest.fixture
def samples():
    rng = np.random.default_rng(0)
    better = rng.normal(20.0, 2.0, size=12)  # e.g. FID of the scheduler arm
    worse = rng.normal(25.0, 2.0, size=12)
    return better, worse


def test_one_sided_direction_follows_mode(samples):
    better, worse = samples
    assert welch_t(better, worse, "min").p_value < 0.01
    assert welch_t(better, worse, "max").p_value > 0.99
    assert mann_whitney(better, worse, "min").p_value < 0.01
    assert mann_whitney(better, worse, "max").p_value > 0.99
    assert welch_t(better, worse, "min").alternative == "less"
    # One-sided p in the observed direction is half the two-sided p.
    two_sided = sps.ttest_ind(better, worse, equal_var=False).pvalue
    assert welch_t(better, worse, "min").p_value == pytest.approx(two_sided / 2)


def test_wilcoxon_paired_direction(samples):
    better, worse = samples
    assert wilcoxon_paired(better, better + 1.0 + np.arange(12) * 0.1, "min").p_value < 0.01
    assert wilcoxon_paired(better, better + 1.0 + np.arange(12) * 0.1, "max").p_value > 0.99
    with pytest.raises(ValueError, match="equal length"):
        wilcoxon_paired([1.0, 2.0], [1.0], "min")


def test_degenerate_inputs_give_nan_with_reason():
    r = welch_t([1.0], [2.0, 3.0], "min")
    assert math.isnan(r.p_value) and "≥ 2" in r.reason
    r = welch_t([1.0, 1.0], [2.0, 2.0], "min")
    assert math.isnan(r.p_value) and "variance" in r.reason
    r = mann_whitney([3.0, 3.0], [3.0, 3.0, 3.0], "max")
    assert math.isnan(r.p_value) and "tied" in r.reason
    r = mann_whitney([], [1.0], "min")
    assert math.isnan(r.p_value)
    r = wilcoxon_paired([1.0, 2.0], [1.0, 2.0], "min")
    assert math.isnan(r.p_value) and "zero" in r.reason
    r = wilcoxon_paired([np.nan], [1.0], "min")
    assert math.isnan(r.p_value) and r.reason == "no finite pairs"
    with pytest.raises(ValueError, match="mode"):
        welch_t([1.0, 2.0], [1.0, 2.0], "lower")


def test_effect_size_independent(samples):
    better, worse = samples
    e = effect_size_independent(better, worse, "min", np.random.default_rng(1))
    expected_pct = 100 * (worse.mean() - better.mean()) / worse.mean()
    assert e.relative_improvement_pct == pytest.approx(expected_pct)
    assert e.mean_difference == pytest.approx(better.mean() - worse.mean())
    assert e.ci_low < e.mean_difference < e.ci_high < 0
    # P(improvement) counted over all pairs by hand.
    assert e.prob_improvement == pytest.approx(np.mean(better[:, None] < worse[None, :]))
    again = effect_size_independent(better, worse, "min", np.random.default_rng(1))
    assert (again.ci_low, again.ci_high) == (e.ci_low, e.ci_high)
    flipped = effect_size_independent(better, worse, "max", np.random.default_rng(1))
    assert flipped.relative_improvement_pct == pytest.approx(-expected_pct)
    assert flipped.prob_improvement == pytest.approx(1 - e.prob_improvement)


def test_effect_size_paired_and_degenerate():
    arm = np.array([1.0, 2.0, 3.0, 4.0])
    base = np.array([2.0, 2.0, 5.0, 4.5])
    e = effect_size_paired(arm, base, "min", np.random.default_rng(0))
    assert e.mean_difference == pytest.approx(np.mean(arm - base))
    assert e.prob_improvement == pytest.approx((3 + 0.5) / 4)  # three better, one tie
    assert e.ci_low <= e.mean_difference <= e.ci_high
    one = effect_size_independent([1.0], [2.0], "min", np.random.default_rng(0))
    assert math.isnan(one.ci_low) and "≥ 2" in one.reason
    none = effect_size_paired([np.nan], [1.0], "min", np.random.default_rng(0))
    assert math.isnan(none.mean_difference) and none.reason == "no finite pairs"
