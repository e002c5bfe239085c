"""Analysis speed: tuning-budget curves + 1,000 bootstrap resamples for 100,000 trials (two arms).

Goal (issue 4): ≤ 30 s on 2 cores.  Prints the total, the per-resample cost,
and for comparison the exact every-k curve at a smaller N.
"""

from __future__ import annotations

import time

import numpy as np

from analysis.budget import bootstrap_budget_band, budget_ratio, log_spaced_ks, tuning_budget_curve

N_TRIALS = 100_000  # both arms together
N_RESAMPLES = 1_000
GOAL_S = 30.0


def synthetic_arm(rng: np.random.Generator, n: int, divergence_rate: float, floor: float):
    """Validation / test metrics (FID-like, lower is better, best possible `floor`) with diverged trials and ties."""
    quality = floor + rng.lognormal(mean=2.5, sigma=1.0, size=n)
    val = np.round(quality * np.exp(rng.normal(0, 0.05, size=n)), 2)  # rounding makes ties, as real metrics have
    test = quality * np.exp(rng.normal(0, 0.05, size=n))
    diverged = rng.random(n) < divergence_rate
    val[diverged] = np.nan
    test[diverged] = np.nan
    return val, test, diverged


def main() -> None:
    rng = np.random.default_rng(0)
    n_arm = N_TRIALS // 2
    arms = {"constant": synthetic_arm(rng, n_arm, 0.30, 20.0), "gap_aware": synthetic_arm(rng, n_arm, 0.10, 18.0)}
    finite = np.concatenate([a[1][~a[2]] for a in arms.values()])
    penalty = (float(np.nanmax(np.concatenate([a[0] for a in arms.values()]))), float(finite.max()))
    ks = log_spaced_ks(n_arm, num=60)

    started = time.perf_counter()
    curves, boot_s = {}, 0.0
    for name, (val, test, diverged) in arms.items():
        curves[name] = tuning_budget_curve(val, test, "min", ks=ks, penalty=penalty, diverged=diverged)
        t0 = time.perf_counter()
        bootstrap_budget_band(val, test, "min", np.random.default_rng(1), ks=ks, penalty=penalty,
                              diverged=diverged, n_resamples=N_RESAMPLES)
        boot_s += time.perf_counter() - t0
    ratio = budget_ratio(curves["gap_aware"], curves["constant"])
    total = time.perf_counter() - started
    per_resample_ms = 1000 * boot_s / (2 * N_RESAMPLES)
    print(f"budget curves + {N_RESAMPLES} bootstrap resamples, {N_TRIALS:,} trials (2 arms × {n_arm:,}), "
          f"{ks.size} budgets on a log grid: {total:.2f} s (goal ≤ {GOAL_S:.0f} s: "
          f"{'met' if total <= GOAL_S else 'NOT met'})")
    print(f"per resample (one arm of {n_arm:,} trials): {per_resample_ms:.2f} ms")
    print(f"budget ratio on the grid: {ratio.describe()}")

    n_small = 5_000
    val, test, diverged = synthetic_arm(np.random.default_rng(2), n_small, 0.3, 20.0)
    t0 = time.perf_counter()
    tuning_budget_curve(val, test, "min", diverged=diverged)
    print(f"exact curve at every k = 1..{n_small:,} (one arm): {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
