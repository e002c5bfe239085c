"""Tuning-budget curves: how good is the tuned model after k random-search trials?

For an arm with N search-stage trials, E[k] is the expected test metric of the
trial with the best validation metric among k trials drawn at random without
replacement.  With the trials sorted by validation metric so that the best is
last (rank N), the trial at rank i is the winner of a random k-subset with
probability

    w_k(i) = C(i - 1, k - 1) / C(N, k)          (i >= k, else 0)

because the subset must contain it and k - 1 of the i - 1 trials below it.
So E[k] = sum_i w_k(i) * test_(i): a weighted sum of the rank-sorted test
values whose weights depend only on N and the rank.  All k are computed at
once from a table of log-factorials; no subsets are enumerated.

Conventions (documented here because they change the numbers):

* **Penalty.**  A trial that diverged, or whose validation or test metric is
  not finite, stays in the pool -- it cost budget -- with both metrics
  replaced by a penalty score.  The default penalty is the worst finite value
  observed (direction-aware); the report passes the worst value of the whole
  study so that every arm is penalised alike.
* **Ties.**  Ties in the validation metric are broken uniformly at random:
  when several trials of a k-subset share the best validation value, each is
  equally likely to be the chosen one.  The exact expectation under that rule
  is the formula above with every test value replaced by the mean test value
  of its tie group (averaging the weights of a tie group is the same as
  averaging its test values).  The rule does not depend on the order of the
  input rows.  Penalised trials all tie with each other (and with any trial
  whose validation value equals the penalty).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.special import gammaln

__all__ = [
    "BudgetCurve",
    "BudgetRatio",
    "penalised_scores",
    "worst_finite",
    "log_spaced_ks",
    "expected_best_weights",
    "tuning_budget_curve",
    "bootstrap_budget_band",
    "budget_curve_with_band",
    "budget_ratio",
]

MODES = ("min", "max")

# The point estimate builds its weight matrix in chunks of about this many entries (memory bound).
_POINT_CHUNK_ENTRIES = 4_000_000
# The bootstrap keeps its whole weight matrix; beyond this many entries it asks for a grid of ks.
_MAX_WEIGHT_ENTRIES = 20_000_000


@dataclass(frozen=True)
class BudgetCurve:
    """Expected best test metric after k trials, with an optional bootstrap band."""

    ks: np.ndarray  # budgets, increasing, 1..n
    expected: np.ndarray  # E[test of best-by-validation among k trials]
    n: int  # trials in the pool
    mode: str  # 'min' or 'max' (direction of the metric)
    lower: np.ndarray | None = None  # percentile band, same shape as ks
    upper: np.ndarray | None = None
    confidence: float | None = None
    n_resamples: int = 0

    def at(self, k: int) -> float:
        """E at budget k (NaN if k is not on this curve's grid)."""
        hit = np.flatnonzero(self.ks == k)
        return float(self.expected[hit[0]]) if hit.size else float("nan")


@dataclass(frozen=True)
class BudgetRatio:
    """How much of the baseline's budget the other arm needs to match it."""

    k: int | None  # smallest k reaching the target, None if never reached
    n: int  # the baseline's full budget N
    target: float  # baseline's expected best at k = N
    exact: bool  # False when the curve was evaluated on a grid (k is then an upper bound)

    @property
    def reached(self) -> bool:
        return self.k is not None

    @property
    def ratio(self) -> float:
        """N / k, or NaN when not reached."""
        return self.n / self.k if self.k else float("nan")

    def describe(self) -> str:
        if not self.reached:
            return "not reached"
        bound = "" if self.exact else "≥ "
        ratio = f"{self.ratio:,.0f}" if self.ratio >= 100 else f"{self.ratio:.3g}"
        return f"{bound}{ratio}× (k={self.k} of N={self.n})"


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")


def worst_finite(values, mode: str) -> float:
    """Worst finite value in `values` for a metric where `mode` is better; NaN if none."""
    _check_mode(mode)
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan")
    return float(arr.max() if mode == "min" else arr.min())


def _as_penalty_pair(penalty, val: np.ndarray, test: np.ndarray, mode: str) -> tuple[float, float]:
    if penalty is None:
        return worst_finite(val, mode), worst_finite(test, mode)
    if np.ndim(penalty) == 0:
        return float(penalty), float(penalty)
    pair = tuple(float(p) for p in penalty)
    if len(pair) != 2:
        raise ValueError("penalty must be None, a number, or a (val_penalty, test_penalty) pair")
    return pair


def penalised_scores(val, test, mode: str, *, diverged=None, penalty=None) -> tuple[np.ndarray, np.ndarray]:
    """Validation and test arrays with diverged / non-finite trials set to the penalty.

    `penalty`: None (worst finite value of `val` and of `test`), a number used
    for both, or a (val_penalty, test_penalty) pair.
    """
    _check_mode(mode)
    val = np.asarray(val, dtype=float).copy()
    test = np.asarray(test, dtype=float).copy()
    if val.shape != test.shape or val.ndim != 1:
        raise ValueError(f"val and test must be 1-d arrays of equal length, got shapes {val.shape} and {test.shape}")
    bad = ~(np.isfinite(val) & np.isfinite(test))
    if diverged is not None:
        diverged = np.asarray(diverged, dtype=bool)
        if diverged.shape != val.shape:
            raise ValueError(f"diverged must have the shape of val {val.shape}, got {diverged.shape}")
        bad |= diverged
    val_pen, test_pen = _as_penalty_pair(penalty, val[~bad], test[~bad], mode)
    val[bad] = val_pen
    test[bad] = test_pen
    return val, test


def log_spaced_ks(n: int, num: int = 60, include: Sequence[int] = (1, 5, 10)) -> np.ndarray:
    """About `num` budgets from 1 to n, log-spaced, always containing 1, n and `include` (≤ n)."""
    if n < 1:
        raise ValueError(f"n must be ≥ 1, got {n}")
    grid = np.unique(np.round(np.geomspace(1, n, num=max(num, 2))).astype(int))
    extra = [k for k in include if 1 <= k <= n]
    return np.unique(np.concatenate([grid, extra, [1, n]]).astype(int))


def _checked_ks(ks, n: int) -> np.ndarray:
    if ks is None:
        return np.arange(1, n + 1)
    ks = np.unique(np.asarray(ks, dtype=int))
    if ks.size == 0 or ks[0] < 1 or ks[-1] > n:
        raise ValueError(f"ks must be budgets between 1 and N={n}, got {ks.min() if ks.size else 'none'}..{ks.max() if ks.size else ''}")
    return ks


def expected_best_weights(n: int, ks) -> np.ndarray:
    """Matrix W (n × len(ks)): W[i-1, j] = C(i-1, k_j-1) / C(n, k_j), rank i = 1 (worst) .. n (best).

    Computed from log-factorials so it is exact to rounding for any n; every
    column sums to 1.
    """
    ks = np.asarray(ks, dtype=int)
    log_fact = gammaln(np.arange(n + 1) + 1.0)  # log(m!) for m = 0..n
    i = np.arange(1, n + 1)[:, None]
    k = ks[None, :]
    valid = i >= k
    i_minus_k = np.where(valid, i - k, 0)
    log_c_num = log_fact[i - 1] - log_fact[k - 1] - log_fact[i_minus_k]  # log C(i-1, k-1)
    log_c_den = log_fact[n] - log_fact[k] - log_fact[n - k]  # log C(n, k)
    return np.where(valid, np.exp(log_c_num - log_c_den), 0.0)


def _rank_order(val: np.ndarray, mode: str) -> np.ndarray:
    """Indices sorting trials from worst to best validation value (best last)."""
    score = -val if mode == "min" else val
    return np.argsort(score, kind="stable")


def _tie_groups(sorted_val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and size of each run of equal validation values in a sorted array."""
    starts = np.flatnonzero(np.r_[True, sorted_val[1:] != sorted_val[:-1]])
    sizes = np.diff(np.r_[starts, sorted_val.size])
    return starts, sizes


def _tie_averaged(sorted_val: np.ndarray, sorted_test: np.ndarray) -> np.ndarray:
    """Each test value replaced by the mean test value of its validation tie group."""
    starts, sizes = _tie_groups(sorted_val)
    if starts.size == sorted_val.size:
        return sorted_test
    means = np.add.reduceat(sorted_test, starts) / sizes
    return np.repeat(means, sizes)


def _weighted_sum_all_ks(values: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """values (rank-sorted, length n) · W for every k in ks, in memory-bounded chunks of ks."""
    n = values.size
    per_chunk = max(1, _POINT_CHUNK_ENTRIES // n)
    out = np.empty(ks.size)
    for start in range(0, ks.size, per_chunk):
        chunk = ks[start : start + per_chunk]
        out[start : start + chunk.size] = values @ expected_best_weights(n, chunk)
    return out


def _prepared(val, test, mode, diverged, penalty):
    val, test = penalised_scores(val, test, mode, diverged=diverged, penalty=penalty)
    if val.size == 0:
        raise ValueError("a tuning-budget curve needs at least one trial")
    order = _rank_order(val, mode)
    return val[order], test[order]


def tuning_budget_curve(val, test, mode: str, ks=None, penalty=None, *, diverged=None) -> BudgetCurve:
    """Exact expected best-by-validation test metric for budgets `ks` (default: every k = 1..N).

    `val`, `test`: per-trial metrics of one arm's search stage.  `diverged`:
    optional boolean mask; diverged and non-finite trials get `penalty` (see
    `penalised_scores`).  See the module docstring for the tie rule.
    """
    _check_mode(mode)
    sorted_val, sorted_test = _prepared(val, test, mode, diverged, penalty)
    n = sorted_val.size
    ks = _checked_ks(ks, n)
    values = _tie_averaged(sorted_val, sorted_test)
    return BudgetCurve(ks=ks, expected=_weighted_sum_all_ks(values, ks), n=n, mode=mode)


def bootstrap_budget_band(
    val,
    test,
    mode: str,
    rng: np.random.Generator,
    ks=None,
    penalty=None,
    *,
    diverged=None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    chunk_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percentile bootstrap band of the curve: resample the N trials with replacement.

    Returns (ks, lower, upper).  The penalty is fixed from the full sample
    before resampling.  Each resample is sorted for free: trials are sorted
    once, a resample is a vector of counts per sorted trial, and its sorted
    test values are those counts expanded (`np.repeat`).  The curves of a
    chunk of resamples are then one matrix product with the weight matrix,
    which depends only on N and is built once.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(seed))")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be ≥ 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    _check_mode(mode)
    sorted_val, sorted_test = _prepared(val, test, mode, diverged, penalty)
    n = sorted_val.size
    ks = _checked_ks(ks, n)
    if n * ks.size > _MAX_WEIGHT_ENTRIES:
        raise ValueError(
            f"a bootstrap band over {ks.size} budgets for N={n} trials needs a {n}×{ks.size} weight matrix; "
            "pass a grid of budgets, e.g. ks=log_spaced_ks(N)"
        )
    weights = expected_best_weights(n, ks)
    starts, sizes = _tie_groups(sorted_val)
    has_ties = starts.size < n
    if chunk_size is None:
        chunk_size = int(np.clip(4_000_000 // n, 1, 256))

    curves = np.empty((n_resamples, ks.size))
    for first in range(0, n_resamples, chunk_size):
        c = min(chunk_size, n_resamples - first)
        draws = rng.integers(0, n, size=(c, n))
        counts = np.bincount((draws + (np.arange(c) * n)[:, None]).ravel(), minlength=c * n).reshape(c, n)
        if has_ties:
            # Within a resample, every member of a tie group gets the group's mean test value.
            group_sum = np.add.reduceat(counts * sorted_test, starts, axis=1)
            group_count = np.add.reduceat(counts, starts, axis=1)
            group_mean = group_sum / np.maximum(group_count, 1)
            per_trial = np.repeat(group_mean, sizes, axis=1)
        else:
            per_trial = np.broadcast_to(sorted_test, (c, n))
        resample_sorted = np.repeat(per_trial.ravel(), counts.ravel()).reshape(c, n)
        curves[first : first + c] = resample_sorted @ weights

    alpha = (1.0 - confidence) / 2.0
    lower, upper = np.quantile(curves, [alpha, 1.0 - alpha], axis=0)
    return ks, lower, upper


def budget_curve_with_band(
    val,
    test,
    mode: str,
    rng: np.random.Generator,
    ks=None,
    penalty=None,
    *,
    diverged=None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> BudgetCurve:
    """`tuning_budget_curve` plus its bootstrap band on the same budgets."""
    curve = tuning_budget_curve(val, test, mode, ks=ks, penalty=penalty, diverged=diverged)
    if n_resamples == 0:
        return curve
    _, lower, upper = bootstrap_budget_band(
        val, test, mode, rng, ks=curve.ks, penalty=penalty, diverged=diverged,
        n_resamples=n_resamples, confidence=confidence,
    )
    return BudgetCurve(
        ks=curve.ks, expected=curve.expected, n=curve.n, mode=mode,
        lower=lower, upper=upper, confidence=confidence, n_resamples=n_resamples,
    )


def budget_ratio(candidate: BudgetCurve, baseline: BudgetCurve) -> BudgetRatio:
    """Smallest k at which `candidate` reaches `baseline`'s expected best at its full budget N.

    "Reaches" means at least as good (≤ for 'min', ≥ for 'max').  The ratio N/k
    says what fraction of the baseline's budget suffices ("needs 1/10 of the
    budget" is a ratio of 10).  When the candidate's curve is on a grid of ks
    rather than every k, the found k is the smallest grid point, so the true
    ratio is at least the one reported (`exact=False`).
    """
    if candidate.mode != baseline.mode:
        raise ValueError(f"curves have different modes: {candidate.mode!r} vs {baseline.mode!r}")
    if baseline.ks[-1] != baseline.n:
        raise ValueError("the baseline curve must include its full budget k = N")
    target = float(baseline.expected[-1])
    exact = candidate.ks.size == candidate.n
    if not np.isfinite(target):
        return BudgetRatio(k=None, n=baseline.n, target=target, exact=exact)
    # A tiny tolerance so that an exact tie (e.g. identical pools) counts as reached.
    tol = 1e-12 * max(1.0, abs(target))
    if candidate.mode == "min":
        reached = candidate.expected <= target + tol
    else:
        reached = candidate.expected >= target - tol
    hits = np.flatnonzero(reached)
    k = int(candidate.ks[hits[0]]) if hits.size else None
    return BudgetRatio(k=k, n=baseline.n, target=target, exact=exact)
