"""Tuning-budget curves: the exact formula against brute-force enumeration, and the bootstrap band."""

import itertools

import numpy as np
import pytest

from analysis import budget
from analysis.budget import (BudgetCurve, bootstrap_budget_band, budget_curve_with_band, budget_ratio,
                             expected_best_weights, log_spaced_ks, penalised_scores, tuning_budget_curve)


def brute_force_curve(val, test, mode):
    """E[test of best-by-val among k] by enumerating every k-subset; ties in val split uniformly."""
    n = len(val)
    better = (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)
    out = []
    for k in range(1, n + 1):
        total, count = 0.0, 0
        for subset in itertools.combinations(range(n), k):
            best = subset[0]
            for i in subset[1:]:
                if better(val[i], val[best]):
                    best = i
            tied = [i for i in subset if val[i] == val[best]]
            total += sum(test[i] for i in tied) / len(tied)
            count += 1
        out.append(total / count)
    return np.array(out)


def random_pool(rng, n, mode, n_diverged=2, tie_levels=3):
    """Validation values drawn from a few levels (many ties), test values correlated but noisy."""
    val = rng.integers(0, tie_levels, size=n).astype(float) + (0.0 if mode == "min" else 10.0)
    test = val + rng.normal(0, 1.0, size=n)
    diverged = np.zeros(n, dtype=bool)
    diverged[rng.choice(n, size=min(n_diverged, n - 1), replace=False)] = True  # keep one finite trial
    val[diverged & (rng.random(n) < 0.5)] = np.nan  # some diverged trials never got a metric
    return val, test, diverged


@pytest.mark.parametrize("mode", ["min", "max"])
@pytest.mark.parametrize("n", [1, 2, 5, 8, 10])
def test_exact_curve_equals_brute_force_with_ties_and_divergence(mode, n):
    rng = np.random.default_rng(100 * n + (mode == "max"))
    for _ in range(3):
        val, test, diverged = random_pool(rng, n, mode)
        curve = tuning_budget_curve(val, test, mode, diverged=diverged)
        pval, ptest = penalised_scores(val, test, mode, diverged=diverged)
        np.testing.assert_allclose(curve.expected, brute_force_curve(pval, ptest, mode), rtol=1e-10, atol=1e-12)
        assert curve.ks.tolist() == list(range(1, n + 1))


def test_penalty_given_explicitly_is_used_for_diverged_trials():
    val = np.array([3.0, 1.0, 2.0, np.nan])
    test = np.array([3.5, 1.2, 2.1, np.nan])
    diverged = np.array([False, False, True, True])
    curve = tuning_budget_curve(val, test, "min", penalty=(10.0, 20.0), diverged=diverged)
    pval = np.array([3.0, 1.0, 10.0, 10.0])
    ptest = np.array([3.5, 1.2, 20.0, 20.0])
    np.testing.assert_allclose(curve.expected, brute_force_curve(pval, ptest, "min"))
    # k = 1 is the plain mean of the penalised test values.
    assert curve.expected[0] == pytest.approx(ptest.mean())


def test_all_diverged_pool():
    val = np.array([np.nan, 2.0, np.nan])
    diverged = np.ones(3, dtype=bool)
    # With a study-wide penalty every trial scores it; without a finite value anywhere there is no curve.
    curve = tuning_budget_curve(val, val, "min", penalty=(9.0, 9.0), diverged=diverged)
    np.testing.assert_allclose(curve.expected, 9.0)
    assert np.all(np.isnan(tuning_budget_curve(val, val, "min", diverged=diverged).expected))


@pytest.mark.parametrize("mode", ["min", "max"])
def test_k1_is_mean_and_kN_is_test_of_best_by_validation(mode):
    rng = np.random.default_rng(7)
    n = 40
    val = rng.normal(size=n)
    test = val + rng.normal(0, 0.5, size=n)
    diverged = rng.random(n) < 0.2
    curve = tuning_budget_curve(val, test, mode, diverged=diverged)
    pval, ptest = penalised_scores(val, test, mode, diverged=diverged)
    assert curve.at(1) == pytest.approx(ptest.mean(), rel=1e-12)
    best = np.argmin(pval) if mode == "min" else np.argmax(pval)
    assert curve.at(n) == pytest.approx(ptest[best], rel=1e-12)
    # Default penalty: the worst finite value, direction-aware.
    worst = test[~diverged].max() if mode == "min" else test[~diverged].min()
    assert np.all(ptest[diverged] == worst)


def test_ties_do_not_depend_on_row_order():
    val = np.array([1.0, 1.0, 2.0, 2.0, 3.0])
    test = np.array([5.0, 1.0, 2.0, 7.0, 3.0])
    a = tuning_budget_curve(val, test, "min").expected
    perm = np.array([4, 1, 3, 0, 2])
    b = tuning_budget_curve(val[perm], test[perm], "min").expected
    np.testing.assert_allclose(a, b, rtol=1e-12)
    # At k = N both best-validation trials tie: the expectation is their mean test value.
    assert a[-1] == pytest.approx(3.0)


def test_weights_are_probabilities():
    w = expected_best_weights(50, np.arange(1, 51))
    np.testing.assert_allclose(w.sum(axis=0), 1.0, rtol=1e-10)
    assert np.all(w >= 0)
    # k = 1: uniform; k = N: all mass on the best (last) rank.
    np.testing.assert_allclose(w[:, 0], 1 / 50)
    assert w[-1, -1] == pytest.approx(1.0)


def test_grid_of_ks_matches_all_ks_and_chunking(monkeypatch):
    rng = np.random.default_rng(3)
    val, test = rng.normal(size=500), rng.normal(size=500)
    full = tuning_budget_curve(val, test, "max")
    grid = log_spaced_ks(500, num=20)
    on_grid = tuning_budget_curve(val, test, "max", ks=grid)
    np.testing.assert_allclose(on_grid.expected, full.expected[grid - 1], rtol=1e-12)
    monkeypatch.setattr(budget, "_POINT_CHUNK_ENTRIES", 500 * 7)  # force chunks of 7 budgets
    chunked = tuning_budget_curve(val, test, "max")
    np.testing.assert_allclose(chunked.expected, full.expected, rtol=1e-12)


def test_log_spaced_ks_contains_headline_budgets():
    ks = log_spaced_ks(1000, num=30)
    assert {1, 5, 10, 1000} <= set(ks.tolist())
    assert np.all(np.diff(ks) > 0)
    assert log_spaced_ks(3).tolist() == [1, 2, 3]


def test_bootstrap_band_equals_naive_resampling():
    """The fast band (counts + repeat + one matmul) equals recomputing the curve on each resample."""
    rng = np.random.default_rng(11)
    n = 12
    # Sorted worst-to-best for 'min' (descending), with ties, so the resample indices mean the same rows.
    val = np.sort(rng.integers(0, 5, size=n).astype(float))[::-1].copy()
    test = val + rng.normal(0, 1, size=n)
    diverged = np.zeros(n, dtype=bool)
    diverged[:2] = True  # diverged trials get the worst value, so they stay first in the order
    penalty = (float(val.max()), float(test.max()) + 1.0)
    ks, lower, upper = bootstrap_budget_band(val, test, "min", np.random.default_rng(5), penalty=penalty,
                                             diverged=diverged, n_resamples=300, chunk_size=300)
    draws = np.random.default_rng(5).integers(0, n, size=(300, n))
    pval, ptest = penalised_scores(val, test, "min", diverged=diverged, penalty=penalty)
    naive = np.array([tuning_budget_curve(pval[d], ptest[d], "min").expected for d in draws])
    low, high = np.quantile(naive, [0.025, 0.975], axis=0)
    np.testing.assert_allclose(lower, low, rtol=1e-10)
    np.testing.assert_allclose(upper, high, rtol=1e-10)


def test_band_is_reproducible_and_brackets_a_sensible_range():
    rng = np.random.default_rng(0)
    val, test = rng.normal(size=60), rng.normal(size=60)
    a = budget_curve_with_band(val, test, "min", np.random.default_rng(1), n_resamples=200)
    b = budget_curve_with_band(val, test, "min", np.random.default_rng(1), n_resamples=200)
    np.testing.assert_array_equal(a.lower, b.lower)
    assert np.all(a.lower <= a.upper)
    # At k = 1 the curve is a mean; its percentile band covers it.
    assert a.lower[0] <= a.expected[0] <= a.upper[0]


def test_bootstrap_refuses_huge_all_k_request_with_hint():
    val = np.arange(20_000, dtype=float)
    with pytest.raises(ValueError, match="log_spaced_ks"):
        bootstrap_budget_band(val, val, "min", np.random.default_rng(0), n_resamples=2)


def _curve(values, mode="min"):
    values = np.asarray(values, dtype=float)
    return BudgetCurve(ks=np.arange(1, values.size + 1), expected=values, n=values.size, mode=mode)


def test_budget_ratio_min_and_max_and_not_reached():
    baseline = _curve([10, 8, 6, 5, 4, 3.5, 3.2, 3.1, 3.05, 3.0])
    candidate = _curve([6, 4, 3.0, 2.5, 2.2, 2.0, 1.9, 1.8, 1.7, 1.6])
    r = budget_ratio(candidate, baseline)
    assert (r.k, r.n, r.ratio, r.reached) == (3, 10, 10 / 3, True)
    assert "k=3 of N=10" in r.describe()
    worse = _curve([12, 11, 10, 9, 8, 7, 6, 5, 4, 3.5])
    assert not budget_ratio(worse, baseline).reached
    assert budget_ratio(worse, baseline).describe() == "not reached"
    # Maximising: reached when at least as high.
    base_max = _curve([0.5, 0.7, 0.8, 0.85], mode="max")
    cand_max = _curve([0.8, 0.86, 0.9, 0.91], mode="max")
    assert budget_ratio(cand_max, base_max).k == 2
    # Identical pools reach it exactly at N: ratio 1.
    assert budget_ratio(baseline, baseline).ratio == 1.0


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="mode"):
        tuning_budget_curve([1.0], [1.0], "best")
    with pytest.raises(ValueError, match="ks"):
        tuning_budget_curve([1.0, 2.0], [1.0, 2.0], "min", ks=[0, 1])
    with pytest.raises(ValueError, match="equal length"):
        tuning_budget_curve([1.0, 2.0], [1.0], "min")
    with pytest.raises(ValueError, match="Generator"):
        bootstrap_budget_band([1.0], [1.0], "min", rng=42)
    with pytest.raises(ValueError, match="modes"):
        budget_ratio(_curve([1.0], "min"), _curve([1.0], "max"))
