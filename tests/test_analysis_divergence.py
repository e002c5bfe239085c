"""Divergence rates (Wilson intervals) and the exact McNemar test, checked against closed forms."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis.divergence import divergence_rates, divergence_reasons, mcnemar_exact, wilson_interval

Z95 = 1.959963984540054  # standard normal 97.5 % quantile


def wilson_by_hand(k, n, z=Z95):
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (1, 1), (17, 250), (120, 240)])
def test_wilson_matches_closed_form(k, n):
    low, high = wilson_interval(k, n)
    exp_low, exp_high = wilson_by_hand(k, n)
    assert low == pytest.approx(max(exp_low, 0.0), abs=1e-12)
    assert high == pytest.approx(min(exp_high, 1.0), abs=1e-12)


def test_wilson_known_value_and_bad_input():
    # 3 of 10: the textbook Wilson interval is (0.1078, 0.6032).
    low, high = wilson_interval(3, 10)
    assert (round(low, 4), round(high, 4)) == (0.1078, 0.6032)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(5, 3)


def exact_mcnemar_by_hand(b, c):
    """Two-sided exact McNemar: twice the smaller binomial tail of Bin(b + c, 1/2), capped at 1."""
    n = b + c
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def paired_table(outcomes):
    """outcomes: list of (constant diverged, gap_aware diverged) per (config, seed) pair."""
    rows = []
    for i, (base, arm) in enumerate(outcomes):
        for name, div in (("constant", base), ("gap_aware", arm)):
            rows.append({"stage": "search", "config_id": i // 2, "seed": i % 2, "arm": name, "diverged": div,
                         "divergence_reason": "nonfinite" if div else None})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("b,c,both,neither", [(1, 9, 3, 20), (4, 6, 0, 5), (0, 7, 2, 2), (12, 30, 1, 40)])
def test_mcnemar_matches_exact_binomial_by_hand(b, c, both, neither):
    # b: only gap_aware diverged; c: only constant diverged.
    outcomes = [(False, True)] * b + [(True, False)] * c + [(True, True)] * both + [(False, False)] * neither
    result = mcnemar_exact(paired_table(outcomes), "gap_aware", "constant")
    assert (result.only_arm_diverged, result.only_baseline_diverged, result.pairs) == (b, c, b + c + both + neither)
    assert result.p_value == pytest.approx(exact_mcnemar_by_hand(b, c), rel=1e-12)


def test_mcnemar_one_sided_and_pairing():
    outcomes = [(True, False)] * 8 + [(False, True)] * 1 + [(False, False)] * 5
    table = paired_table(outcomes)
    # An unpaired row (no baseline partner) must not count.
    extra = pd.DataFrame([{"stage": "confirm", "config_id": 99, "seed": 0, "arm": "gap_aware", "diverged": True}])
    table = pd.concat([table, extra], ignore_index=True)
    less = mcnemar_exact(table, "gap_aware", alternative="less")
    assert less.pairs == 14
    # P(X ≤ 1) for X ~ Bin(9, 1/2)
    assert less.p_value == pytest.approx((1 + 9) / 2 ** 9, rel=1e-12)


def test_mcnemar_without_discordant_pairs_is_nan_with_reason():
    result = mcnemar_exact(paired_table([(True, True), (False, False)]), "gap_aware")
    assert math.isnan(result.p_value) and result.reason == "no discordant pairs"
    empty = mcnemar_exact(paired_table([]).reindex(columns=["stage", "config_id", "seed", "arm", "diverged"]),
                          "gap_aware")
    assert empty.reason == "no paired runs"


def test_rates_and_reasons():
    table = paired_table([(True, False), (True, True), (False, False), (False, False)])
    table.loc[(table["arm"] == "constant") & (table["config_id"] == 0) & (table["seed"] == 1),
              "divergence_reason"] = "collapse"
    rates = divergence_rates(table).set_index("arm")
    assert rates.loc["constant", "trials"] == 4 and rates.loc["constant", "diverged"] == 2
    assert rates.loc["gap_aware", "rate"] == pytest.approx(0.25)
    assert rates.loc["gap_aware", "ci_low"] == pytest.approx(wilson_by_hand(1, 4)[0])
    reasons = divergence_reasons(table)
    assert reasons.loc["constant", "nonfinite"] == 1 and reasons.loc["constant", "collapse"] == 1
    assert reasons.loc["gap_aware"].sum() == 1
    assert np.all(reasons.to_numpy() >= 0)
