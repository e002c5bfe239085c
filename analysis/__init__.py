"""Analysis of gap-aware scheduler studies: from the two Parquet tables to numbers, plots and a report.

Pure pandas / numpy / scipy / matplotlib: no torch, no Ray.  Typical use:

    study = analysis.load("results/quick")              # validated tables (local path or s3:// / gs:// URI)
    curve = analysis.tuning_budget_curve(val, test, "min", diverged=diverged)   # exact E[best of k], every k
    analysis.build_report("results/quick")               # writes results/quick/report/

or from the shell: `python -m analysis report results/quick`.
"""

from .budget import (BudgetCurve, BudgetRatio, bootstrap_budget_band, budget_curve_with_band, budget_ratio,
                     log_spaced_ks, penalised_scores, tuning_budget_curve, worst_finite)
from .compare import StudyAnalysis, analyse_study
from .divergence import divergence_rates, divergence_reasons, mcnemar_exact, wilson_interval
from .load import ResultsTableError, StudyResults, find_studies, load
from .report import build_report, build_reports, format_headline, headline_table, write_report
from .stats import (effect_size_independent, effect_size_paired, holm, mann_whitney, welch_t,
                    wilcoxon_paired)

__all__ = [
    "BudgetCurve", "BudgetRatio", "bootstrap_budget_band", "budget_curve_with_band", "budget_ratio",
    "log_spaced_ks", "penalised_scores", "tuning_budget_curve", "worst_finite",
    "StudyAnalysis", "analyse_study",
    "divergence_rates", "divergence_reasons", "mcnemar_exact", "wilson_interval",
    "ResultsTableError", "StudyResults", "find_studies", "load",
    "build_report", "build_reports", "format_headline", "headline_table", "write_report",
    "effect_size_independent", "effect_size_paired", "holm", "mann_whitney", "welch_t", "wilcoxon_paired",
]
