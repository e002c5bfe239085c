"""Divergence: how often each arm diverges, and whether the scheduler changes that.

* Rates per arm with Wilson score intervals (scipy's `proportion_ci`).
* The paired comparison: every (stage, config_id, seed) is run under both
  arms, so the exact McNemar test applies -- a binomial test of the discordant
  pairs (one arm diverged, the other did not) against p = 1/2.
* A breakdown of diverged trials by `divergence_reason`.

All functions take the analysed trials table (rows with status `error`
already removed, see `analysis.load`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["wilson_interval", "divergence_rates", "McNemarResult", "mcnemar_exact", "divergence_reasons"]

PAIR_KEYS = ["stage", "config_id", "seed"]


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (NaN, NaN) when n = 0."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 ≤ successes ≤ n, got successes={successes}, n={n}")
    if n == 0:
        return float("nan"), float("nan")
    ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def divergence_rates(trials: pd.DataFrame, by=("arm",), confidence: float = 0.95) -> pd.DataFrame:
    """Per group: trials, diverged, rate and its Wilson interval."""
    rows = []
    for key, group in trials.groupby(list(by), sort=False, observed=True):
        key = key if isinstance(key, tuple) else (key,)
        n = len(group)
        k = int(group["diverged"].sum())
        low, high = wilson_interval(k, n, confidence)
        rows.append({**dict(zip(by, key)), "trials": n, "diverged": k, "rate": k / n if n else np.nan,
                     "ci_low": low, "ci_high": high})
    columns = [*by, "trials", "diverged", "rate", "ci_low", "ci_high"]
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class McNemarResult:
    arm: str
    baseline: str
    pairs: int  # (stage, config_id, seed) present in both arms
    only_arm_diverged: int  # discordant: arm diverged, baseline did not
    only_baseline_diverged: int  # discordant: baseline diverged, arm did not
    p_value: float  # exact (binomial) McNemar, NaN when there are no discordant pairs
    alternative: str
    reason: str | None = None  # why p_value is NaN


def mcnemar_exact(trials: pd.DataFrame, arm: str, baseline: str = "constant",
                  alternative: str = "two-sided") -> McNemarResult:
    """Exact McNemar test of the divergence of `arm` against `baseline` over paired runs.

    Pairs are matched on (stage, config_id, seed).  `alternative='less'` tests
    whether `arm` diverges less often than `baseline`.
    """
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}")
    a = trials.loc[trials["arm"] == arm, [*PAIR_KEYS, "diverged"]]
    b = trials.loc[trials["arm"] == baseline, [*PAIR_KEYS, "diverged"]]
    paired = a.merge(b, on=PAIR_KEYS, suffixes=("_arm", "_base"))
    only_arm = int((paired["diverged_arm"] & ~paired["diverged_base"]).sum())
    only_base = int((~paired["diverged_arm"] & paired["diverged_base"]).sum())
    discordant = only_arm + only_base
    if discordant == 0:
        reason = "no paired runs" if paired.empty else "no discordant pairs"
        return McNemarResult(arm, baseline, len(paired), only_arm, only_base, float("nan"), alternative, reason)
    # Under H0 a discordant pair is equally likely to go either way.
    p = stats.binomtest(only_arm, discordant, 0.5, alternative=alternative).pvalue
    return McNemarResult(arm, baseline, len(paired), only_arm, only_base, float(p), alternative)


def divergence_reasons(trials: pd.DataFrame) -> pd.DataFrame:
    """Counts of diverged trials per arm (rows) and divergence_reason (columns)."""
    diverged = trials[trials["diverged"]]
    if "divergence_reason" in diverged.columns:
        reason = diverged["divergence_reason"].fillna("unspecified").astype(str)
    else:
        reason = pd.Series("unspecified", index=diverged.index)
    table = pd.crosstab(diverged["arm"], reason)
    table.columns.name = "divergence_reason"
    return table
