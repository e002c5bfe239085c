"""Significance of quality differences between an arm and the baseline.

Every test is scipy's; only the Holm step-down correction is written here.
All tests are one-sided in the direction of improvement of the metric:
for a metric to minimise (FID) the alternative is "the arm is lower", for a
metric to maximise (accuracy) "the arm is higher".

Degenerate inputs (too few values, all values tied, all paired differences
zero) give a NaN p-value with a `reason` instead of an exception or a
misleading number.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

__all__ = [
    "TestResult",
    "EffectSize",
    "holm",
    "apply_holm",
    "welch_t",
    "mann_whitney",
    "wilcoxon_paired",
    "effect_size_independent",
    "effect_size_paired",
]


@dataclass(frozen=True)
class TestResult:
    __test__ = False  # not a pytest test class, despite the name

    test: str  # e.g. 'Welch t', 'Mann-Whitney U', 'Wilcoxon signed-rank', 'McNemar (exact)'
    p_value: float
    statistic: float = float("nan")
    alternative: str = ""
    n_arm: int = 0
    n_baseline: int = 0
    reason: str | None = None  # why p_value is NaN, or a warning scipy gave while computing it
    p_holm: float = float("nan")  # filled by apply_holm


@dataclass(frozen=True)
class EffectSize:
    relative_improvement_pct: float  # (baseline - arm) / |baseline| · 100 for 'min'; sign flipped for 'max'
    mean_difference: float  # mean(arm) - mean(baseline) (for paired data: mean of differences)
    ci_low: float  # bootstrap CI of mean_difference
    ci_high: float
    prob_improvement: float  # P(arm better than baseline), ties count half
    reason: str | None = None


def _nan_result(test: str, alternative: str, n_arm: int, n_base: int, reason: str) -> TestResult:
    return TestResult(test, float("nan"), float("nan"), alternative, n_arm, n_base, reason)


def _alternative(mode: str) -> str:
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    return "less" if mode == "min" else "greater"


def _finite(values) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    return arr[np.isfinite(arr)]


def _run_scipy(test: str, alternative: str, n_arm: int, n_base: int, fn, /, *args, **kwargs) -> TestResult:
    """Call a scipy test; a warning it raises (e.g. precision loss on nearly equal data) goes into `reason`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fn(*args, **kwargs)
    note = "; ".join(sorted({str(w.message).split(". ")[0] for w in caught})) or None
    return TestResult(test, float(res.pvalue), float(res.statistic), alternative, n_arm, n_base, note)


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values; NaN entries stay NaN and are not counted in m.

    Sort the m p-values ascending, p_(j) ↦ max_{i ≤ j} min(1, (m - i + 1) p_(i)).
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    m = present.size
    if m == 0:
        return adjusted
    order = present[np.argsort(p[present], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def apply_holm(results: list[TestResult]) -> list[TestResult]:
    """The same results with `p_holm` filled in, Holm-adjusted across all of them."""
    adjusted = holm([r.p_value for r in results])
    return [replace(r, p_holm=float(a)) for r, a in zip(results, adjusted)]


def welch_t(arm, baseline, mode: str) -> TestResult:
    """One-sided Welch t-test (unequal variances) of arm vs baseline."""
    alternative = _alternative(mode)
    a, b = _finite(arm), _finite(baseline)
    if a.size < 2 or b.size < 2:
        return _nan_result("Welch t", alternative, a.size, b.size, "needs ≥ 2 finite values per arm")
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        return _nan_result("Welch t", alternative, a.size, b.size, "no variance in either arm")
    return _run_scipy("Welch t", alternative, a.size, b.size, stats.ttest_ind, a, b, equal_var=False,
                      alternative=alternative)


def mann_whitney(arm, baseline, mode: str) -> TestResult:
    """One-sided Mann-Whitney U test of arm vs baseline."""
    alternative = _alternative(mode)
    a, b = _finite(arm), _finite(baseline)
    if a.size < 1 or b.size < 1:
        return _nan_result("Mann-Whitney U", alternative, a.size, b.size, "needs ≥ 1 finite value per arm")
    if np.ptp(np.concatenate([a, b])) == 0:
        return _nan_result("Mann-Whitney U", alternative, a.size, b.size, "all values tied")
    return _run_scipy("Mann-Whitney U", alternative, a.size, b.size, stats.mannwhitneyu, a, b,
                      alternative=alternative)


def _finite_pairs(arm, baseline) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(arm, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have equal length, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def wilcoxon_paired(arm, baseline, mode: str) -> TestResult:
    """One-sided Wilcoxon signed-rank test of paired values (same config and seed)."""
    alternative = _alternative(mode)
    a, b = _finite_pairs(arm, baseline)
    if a.size < 1:
        return _nan_result("Wilcoxon signed-rank", alternative, a.size, b.size, "no finite pairs")
    if np.all(a == b):
        return _nan_result("Wilcoxon signed-rank", alternative, a.size, b.size, "all paired differences are zero")
    return _run_scipy("Wilcoxon signed-rank", alternative, a.size, b.size, stats.wilcoxon, a, b,
                      alternative=alternative)


def _relative_improvement(mean_arm: float, mean_base: float, mode: str) -> float:
    if mean_base == 0 or not np.isfinite(mean_base):
        return float("nan")
    gain = (mean_base - mean_arm) if mode == "min" else (mean_arm - mean_base)
    return float(100.0 * gain / abs(mean_base))


def _bootstrap_ci(data: tuple, statistic, rng, confidence: float, paired: bool) -> tuple[float, float]:
    res = stats.bootstrap(
        data, statistic, paired=paired, vectorized=True, n_resamples=2000,
        confidence_level=confidence, method="percentile", rng=rng,
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _mean_difference(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def effect_size_independent(arm, baseline, mode: str, rng: np.random.Generator,
                            confidence: float = 0.95) -> EffectSize:
    """Effect of arm vs baseline for independent samples (e.g. confirm-stage reruns)."""
    _alternative(mode)
    a, b = _finite(arm), _finite(baseline)
    if a.size < 1 or b.size < 1:
        nan = float("nan")
        return EffectSize(nan, nan, nan, nan, nan, "needs ≥ 1 finite value per arm")
    diff = float(a.mean() - b.mean())
    # P(arm better): over all (arm, baseline) pairs, ties count half.
    better = (a[:, None] < b[None, :]) if mode == "min" else (a[:, None] > b[None, :])
    prob = float(better.mean() + 0.5 * (a[:, None] == b[None, :]).mean())
    low = high = float("nan")
    reason = None
    if a.size < 2 or b.size < 2:
        reason = "bootstrap CI needs ≥ 2 values per arm"
    elif np.ptp(a) == 0 and np.ptp(b) == 0:
        low = high = diff
    else:
        low, high = _bootstrap_ci((a, b), _mean_difference, rng, confidence, paired=False)
    return EffectSize(_relative_improvement(a.mean(), b.mean(), mode), diff, low, high, prob, reason)


def effect_size_paired(arm, baseline, mode: str, rng: np.random.Generator,
                       confidence: float = 0.95) -> EffectSize:
    """Effect of arm vs baseline for paired samples (search stage: same config and seed)."""
    _alternative(mode)
    a, b = _finite_pairs(arm, baseline)
    if a.size < 1:
        nan = float("nan")
        return EffectSize(nan, nan, nan, nan, nan, "no finite pairs")
    d = a - b
    better = (d < 0) if mode == "min" else (d > 0)
    prob = float(better.mean() + 0.5 * (d == 0).mean())
    low = high = float("nan")
    reason = None
    if d.size < 2:
        reason = "bootstrap CI needs ≥ 2 pairs"
    elif np.ptp(d) == 0:
        low = high = float(d[0])
    else:
        low, high = _bootstrap_ci((d,), _mean, rng, confidence, paired=False)
    return EffectSize(_relative_improvement(a.mean(), b.mean(), mode), float(d.mean()), low, high, prob, reason)
