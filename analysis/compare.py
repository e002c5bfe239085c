"""The analysis of one study: every number the report shows, computed from the tables.

`analyse_study` turns a loaded `StudyResults` into a `StudyAnalysis` --
budget curves and ratios, divergence rates and McNemar tests, quality tests
with effect sizes, Holm-adjusted across the whole report -- and records in
`notes` what could not be computed and why.  Nothing here draws or writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .budget import (BudgetCurve, BudgetRatio, budget_curve_with_band, budget_ratio, log_spaced_ks,
                     penalised_scores, tuning_budget_curve, worst_finite)
from .divergence import McNemarResult, divergence_rates, divergence_reasons, mcnemar_exact
from .load import BASELINE_ARM, SCHEDULER_ARM, ResultsTableError, StudyResults
from .stats import (EffectSize, TestResult, apply_holm, effect_size_independent, effect_size_paired,
                    mann_whitney, welch_t, wilcoxon_paired)

__all__ = ["Comparison", "StudyAnalysis", "analyse_study", "ordered_arms", "find_ideal_loss",
           "HEADLINE_KS"]

HEADLINE_KS = (1, 5, 10)
# Up to this many trials the curve (and its band) is computed at every k; above, on a log grid.
ALL_K_MAX_N = 300
# Up to this many trials the budget ratio is searched over every k (point estimate only);
# above, over a fine log grid (about 0.5 % apart), and reported as a bound.
RATIO_ALL_K_MAX_N = 5_000


@dataclass(frozen=True)
class Comparison:
    """One hypothesis test of an arm against the baseline."""

    arm: str
    baseline: str
    stage: str  # 'search' or 'confirm'
    question: str  # 'divergence' or 'quality'
    result: TestResult


@dataclass
class StudyAnalysis:
    results: StudyResults
    arms: list[str]
    baseline: str | None  # None when the study has no 'constant' arm
    metric_name: str
    mode: str
    penalty: tuple[float, float]  # (validation, test) score given to diverged trials
    curves: dict[str, BudgetCurve | None]  # search stage, per arm
    ratios: dict[str, BudgetRatio]  # per non-baseline arm
    search_counts: dict[str, tuple[int, int]]  # arm -> (trials, diverged) in the search stage
    best_val: dict[str, float]  # best finite validation metric per arm (search stage)
    divergence: pd.DataFrame  # rates per (stage, arm)
    reasons: pd.DataFrame  # diverged trials per arm × reason
    mcnemar: dict[str, McNemarResult]
    comparisons: list[Comparison]  # Holm-adjusted across all of them
    effects: dict[tuple[str, str], EffectSize]  # (arm, stage) -> effect vs baseline
    ideal_loss: float | None
    n_resamples: int
    confidence: float
    seed: int | None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.results.name

    @property
    def has_confirm(self) -> bool:
        return bool((self.results.analysed["stage"] == "confirm").any())

    def comparison(self, arm: str, test: str) -> Comparison | None:
        for c in self.comparisons:
            if c.arm == arm and c.result.test == test:
                return c
        return None


def ordered_arms(arms) -> list[str]:
    """Baseline first, scheduler second, any other arm after them in name order."""
    arms = set(arms)
    head = [a for a in (BASELINE_ARM, SCHEDULER_ARM) if a in arms]
    return head + sorted(arms - set(head))


def _search_key(value):
    """Find a numeric `ideal_loss` anywhere in a nested mapping (the study file)."""
    if isinstance(value, dict):
        if isinstance(value.get("ideal_loss"), (int, float)) and not isinstance(value.get("ideal_loss"), bool):
            return float(value["ideal_loss"])
        for child in value.values():
            found = _search_key(child)
            if found is not None:
                return found
    elif isinstance(value, list):
        for child in value:
            found = _search_key(child)
            if found is not None:
                return found
    return None


def find_ideal_loss(results: StudyResults) -> float | None:
    """V*: from an `ideal_loss` column of the trials or curves table, else from study.yaml, else None."""
    for table in (results.trials, results.curves):
        if table is not None and "ideal_loss" in table.columns:
            values = pd.to_numeric(table["ideal_loss"], errors="coerce").to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            if values.size:
                return float(values[0])
    if results.study_config:
        return _search_key(results.study_config)
    return None


def _budget_ks(n: int) -> np.ndarray | None:
    return None if n <= ALL_K_MAX_N else log_spaced_ks(n, num=120)


def analyse_study(results: StudyResults, rng: np.random.Generator, *, n_resamples: int = 1000,
                  confidence: float = 0.95, seed: int | None = None) -> StudyAnalysis:
    """Every number of the report for one study.  `rng` drives all bootstraps."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    data = results.analysed
    notes = list(results.notes)
    if results.n_errors:
        notes.append(f"{results.n_errors} trial(s) with status 'error' are excluded from every number below")
    if data.empty:
        raise ResultsTableError(f"study {results.name}: every trial has status 'error'; nothing to analyse")

    metric, mode = results.metric_name, results.metric_mode
    arms = ordered_arms(data["arm"].unique())
    baseline = BASELINE_ARM if BASELINE_ARM in arms else None
    if baseline is None:
        notes.append(f"no '{BASELINE_ARM}' arm: no comparisons, budget ratios or p-values")
    elif len(arms) == 1:
        notes.append(f"only the '{BASELINE_ARM}' arm: no comparisons, budget ratios or p-values")

    # One penalty for the whole study, so that every arm is penalised alike.
    penalty = (worst_finite(data["val_metric"], mode), worst_finite(data["test_metric"], mode))
    if not np.isfinite(penalty[1]):
        notes.append(f"no finite {metric} value in the whole study: budget curves cannot be computed")

    search = data[data["stage"] == "search"]
    confirm = data[data["stage"] == "confirm"]
    if search.empty:
        notes.append("no search-stage trials: no budget curves, no paired search-stage test")
    if confirm.empty:
        notes.append("no confirm stage: Welch and Mann-Whitney tests of the tuned models are not run")

    curves: dict[str, BudgetCurve | None] = {}
    full_curves: dict[str, BudgetCurve] = {}
    search_counts, best_val = {}, {}
    for arm in arms:
        rows = search[search["arm"] == arm]
        search_counts[arm] = (len(rows), int(rows["diverged"].sum()))
        best_val[arm] = _best(rows.loc[~rows["diverged"], "val_metric"], mode)
        if rows.empty or not np.isfinite(penalty[1]):
            curves[arm] = None
            continue
        if rows["diverged"].all():
            notes.append(f"arm '{arm}': all {len(rows)} search trials diverged; its curve is the penalty value")
        val, test, div = (rows["val_metric"].to_numpy(float), rows["test_metric"].to_numpy(float),
                          rows["diverged"].to_numpy(bool))
        curves[arm] = budget_curve_with_band(val, test, mode, rng, ks=_budget_ks(len(rows)), penalty=penalty,
                                             diverged=div, n_resamples=n_resamples, confidence=confidence)
        full_ks = None if len(rows) <= RATIO_ALL_K_MAX_N else log_spaced_ks(len(rows), num=2000)
        full_curves[arm] = tuning_budget_curve(val, test, mode, ks=full_ks, penalty=penalty, diverged=div)

    ratios = {}
    if baseline in full_curves:
        for arm in arms:
            if arm != baseline and arm in full_curves:
                ratios[arm] = budget_ratio(full_curves[arm], full_curves[baseline])
    for k in HEADLINE_KS:
        short = [a for a, c in curves.items() if c is not None and c.n < k]
        if short:
            notes.append(f"arm(s) {', '.join(short)} have fewer than {k} search trials: E[best of {k}] not defined")

    rates = divergence_rates(data, by=("stage", "arm"), confidence=confidence)
    rates = rates.sort_values(["stage", "arm"], key=lambda s: s.map(
        {"search": 0, "confirm": 1} if s.name == "stage" else {a: i for i, a in enumerate(arms)}),
        ignore_index=True)

    comparisons, mcnemar, effects = [], {}, {}
    if baseline is not None:
        for arm in arms:
            if arm == baseline:
                continue
            mcnemar[arm] = m = mcnemar_exact(data, arm, baseline)
            comparisons.append(Comparison(arm, baseline, "search+confirm", "divergence", TestResult(
                "McNemar exact (two-sided)", m.p_value, float(m.only_arm_diverged), "two-sided",
                m.only_arm_diverged, m.only_baseline_diverged, m.reason)))
            comparisons.extend(_quality_tests(search, confirm, arm, baseline, mode, penalty, rng, effects,
                                              confidence))
    comparisons = _holm(comparisons)

    return StudyAnalysis(
        results=results, arms=arms, baseline=baseline, metric_name=metric, mode=mode, penalty=penalty,
        curves=curves, ratios=ratios, search_counts=search_counts, best_val=best_val, divergence=rates,
        reasons=divergence_reasons(data), mcnemar=mcnemar, comparisons=comparisons, effects=effects,
        ideal_loss=find_ideal_loss(results), n_resamples=n_resamples, confidence=confidence, seed=seed,
        notes=notes,
    )


def _best(values: pd.Series, mode: str) -> float:
    v = values.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan")
    return float(v.min() if mode == "min" else v.max())


def _penalised_test(rows: pd.DataFrame, mode: str, penalty) -> np.ndarray:
    _, test = penalised_scores(rows["val_metric"].to_numpy(float), rows["test_metric"].to_numpy(float), mode,
                               diverged=rows["diverged"].to_numpy(bool), penalty=penalty)
    return test


def _quality_tests(search, confirm, arm, baseline, mode, penalty, rng, effects, confidence) -> list[Comparison]:
    """Quality tests of `arm` vs `baseline`; diverged trials count with the penalty score."""
    out = []
    keys = ["config_id", "seed"]
    a = search[search["arm"] == arm]
    b = search[search["arm"] == baseline]
    if not a.empty and not b.empty:
        a = a.assign(_score=_penalised_test(a, mode, penalty))
        b = b.assign(_score=_penalised_test(b, mode, penalty))
        paired = a[[*keys, "_score"]].merge(b[[*keys, "_score"]], on=keys, suffixes=("_arm", "_base"))
        x, y = paired["_score_arm"].to_numpy(), paired["_score_base"].to_numpy()
        out.append(Comparison(arm, baseline, "search", "quality", wilcoxon_paired(x, y, mode)))
        effects[(arm, "search")] = effect_size_paired(x, y, mode, rng, confidence)
    a = confirm[confirm["arm"] == arm]
    b = confirm[confirm["arm"] == baseline]
    if not a.empty or not b.empty:
        x = _penalised_test(a, mode, penalty) if not a.empty else np.array([])
        y = _penalised_test(b, mode, penalty) if not b.empty else np.array([])
        out.append(Comparison(arm, baseline, "confirm", "quality", welch_t(x, y, mode)))
        out.append(Comparison(arm, baseline, "confirm", "quality", mann_whitney(x, y, mode)))
        effects[(arm, "confirm")] = effect_size_independent(x, y, mode, rng, confidence)
    return out


def _holm(comparisons: list[Comparison]) -> list[Comparison]:
    adjusted = apply_holm([c.result for c in comparisons])
    return [Comparison(c.arm, c.baseline, c.stage, c.question, r) for c, r in zip(comparisons, adjusted)]
