"""The report end to end from synthetic tables: files, sections, numbers, degenerate studies, the CLI."""

import os
import subprocess
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest

from analysis import build_report, load, tuning_budget_curve
from analysis.__main__ import main
from analysis.budget import penalised_scores
from analysis_synthetic import full_study, make_curves, make_trials, study_config, write_study

FIGURES = ("budget_curves", "divergence", "lr_scatter", "scheduler_traces", "confirm")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    directory = full_study(str(tmp_path_factory.mktemp("results") / "synth"), seed=3, n_configs=16, n_errors=1)
    analysis, files = build_report(directory, n_resamples=200, seed=0)
    return directory, analysis, files


def test_report_files_and_sections(built):
    directory, analysis, files = built
    out = os.path.join(directory, "report")
    assert files.index_html == os.path.join(out, "index.html")
    for name in FIGURES:
        with open(os.path.join(out, "figures", f"{name}.png"), "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
        with open(os.path.join(out, "figures", f"{name}.pdf"), "rb") as handle:
            assert handle.read(5) == b"%PDF-"
    html = open(files.index_html, encoding="utf-8").read()
    for section in ("What the numbers say", "Headline", "Figures", "Divergence by stage and arm",
                    "Hypothesis tests", "Effect sizes", "Method", "Study settings", "Provenance"):
        assert f">{section}" in html, section
    assert html.count("data:image/png;base64,") == len(FIGURES)  # self-contained
    assert "1 trial(s) with status &#x27;error&#x27; are excluded" in html
    assert "search_space" in html and "study_sha256" in html  # settings and provenance shown
    md = open(files.report_md, encoding="utf-8").read()
    assert "## Headline" in md and "| budget ratio vs constant |" in md and "![budget_curves]" in md
    assert not [f for f in os.listdir(out) if ".tmp-" in f]  # temp files renamed away
    headline = pd.read_csv(os.path.join(out, "headline.csv"), index_col=0)
    assert list(headline.columns) == ["constant", "gap_aware"]


def test_report_numbers_match_the_analysis_functions(built):
    directory, analysis, _ = built
    study = load(directory)
    data = study.analysed
    search = data[data["stage"] == "search"]
    penalty = (data["val_metric"].max(), data["test_metric"].max())  # 'min' metric: worst = largest
    for arm in ("constant", "gap_aware"):
        rows = search[search["arm"] == arm]
        expected = tuning_budget_curve(rows["val_metric"], rows["test_metric"], "min", penalty=penalty,
                                       diverged=rows["diverged"])
        np.testing.assert_allclose(analysis.curves[arm].expected, expected.expected, rtol=1e-12)
        _, test = penalised_scores(rows["val_metric"], rows["test_metric"], "min", diverged=rows["diverged"],
                                   penalty=penalty)
        assert analysis.curves[arm].at(1) == pytest.approx(test.mean())
        assert analysis.search_counts[arm] == (len(rows), int(rows["diverged"].sum()))
    # Every comparison is Holm-adjusted within the report: the adjusted p is never below the raw one.
    tested = [c.result for c in analysis.comparisons if np.isfinite(c.result.p_value)]
    assert len(tested) == 4  # McNemar, Wilcoxon, Welch, Mann-Whitney
    assert all(r.p_holm >= r.p_value for r in tested)
    assert min(r.p_holm for r in tested) == pytest.approx(min(1.0, len(tested) * min(r.p_value for r in tested)))


def _study(tmp_path, name, trials, curves=True):
    rng = np.random.default_rng(1)
    return write_study(str(tmp_path / name), trials, make_curves(trials, rng) if curves else None,
                       config=study_config(name))


@pytest.mark.slow
def test_degenerate_studies_build_and_say_what_is_missing(tmp_path):
    rng = np.random.default_rng(5)
    base = make_trials(rng, n_configs=6, confirm_seeds=3)
    all_diverged = base.copy()
    mask = all_diverged["arm"] == "gap_aware"
    all_diverged.loc[mask, ["status", "diverged", "divergence_reason"]] = ["diverged", True, "nonfinite"]
    all_diverged.loc[mask, ["val_metric", "test_metric"]] = np.nan
    cases = {
        "single_arm": (base[base["arm"] == "constant"], True, "only the &#x27;constant&#x27; arm"),
        "no_confirm": (base[base["stage"] == "search"], True, "no confirm stage"),
        "no_curves": (base, False, "no curves.parquet"),
        "all_diverged": (all_diverged, True, "all 6 search trials diverged"),
        "no_baseline": (base[base["arm"] == "gap_aware"], True, "no &#x27;constant&#x27; arm"),
        "max_mode": (make_trials(rng, n_configs=5, mode="max", confirm_seeds=2), True, None),
    }
    analyses = {}
    for name, (trials, curves, message) in cases.items():
        analyses[name], files = build_report(_study(tmp_path, name, trials, curves), n_resamples=50)
        html = open(files.index_html, encoding="utf-8").read()
        if message is not None:
            assert message in html, (name, message)
        assert "<h2>Headline</h2>" in html
    # An arm that always diverged still has a curve (the penalty) and loses every paired comparison.
    all_div = analyses["all_diverged"]
    np.testing.assert_allclose(all_div.curves["gap_aware"].expected, all_div.penalty[1])
    assert all_div.comparison("gap_aware", "Wilcoxon signed-rank").result.p_value > 0.5
    assert all_div.ratios["gap_aware"].describe() == "not reached"
    assert analyses["single_arm"].comparisons == [] and analyses["no_baseline"].ratios == {}
    assert analyses["max_mode"].mode == "max"


@pytest.mark.slow
def test_cli_single_study_root_and_errors(tmp_path, capsys):
    root = tmp_path / "results"
    full_study(str(root / "one"), seed=1, n_configs=5, confirm_seeds=2)
    full_study(str(root / "two"), seed=2, n_configs=5, confirm_seeds=2, mode="max", study="two")
    assert main(["report", str(root), "--resamples", "30"]) == 0
    printed = capsys.readouterr().out
    assert "Study synth" in printed and "Study two" in printed and "budget ratio vs constant" in printed
    assert os.path.join(str(root), "one", "report", "index.html") in printed
    assert (root / "report" / "index.html").exists() and (root / "report" / "cross_study.png").exists()
    assert (root / "two" / "report" / "index.html").exists()
    cross = (root / "report" / "index.html").read_text()
    assert "../one/report/index.html" in cross and "data:image/png;base64," in cross

    bad = make_trials(np.random.default_rng(0), n_configs=3).drop(columns=["test_metric"])
    write_study(str(tmp_path / "bad"), bad)
    capsys.readouterr()
    assert main(["report", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing column 'test_metric'" in err
    assert main(["report", str(tmp_path / "nowhere")]) == 2


def test_import_is_light_and_leaves_matplotlib_alone(built):
    code = ("import sys, matplotlib; before = dict(matplotlib.rcParams); import analysis; "
            "assert 'torch' not in sys.modules and 'ray' not in sys.modules, 'heavy import'; "
            "assert dict(matplotlib.rcParams) == before, 'rcParams changed'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    # Building figures did not change the global style of this process either.
    assert matplotlib.rcParams["figure.figsize"] == matplotlib.rcParamsDefault["figure.figsize"]


def test_lr_scatter_falls_back_to_the_feature_lr_of_domain_adversarial_tasks():
    from analysis import plots

    trials = pd.DataFrame(
        {
            "arm": ["constant", "gap_aware"] * 3,
            "hp_lr_d": [1e-4, 1e-4, 1e-3, 1e-3, 1e-2, 1e-2],
            "hp_lr": [1e-3, 1e-3, 5e-3, 5e-3, 1e-2, 1e-2],
            "diverged": [False, False, False, True, False, False],
            "test_metric": [0.5, 0.55, 0.6, float("nan"), 0.4, 0.45],
        }
    )
    fig = plots.lr_scatter_figure(trials, ["constant", "gap_aware"], "target_acc", "max")
    assert fig is not None
    assert fig.axes[0].get_ylabel().startswith("lr (features")
    assert plots.lr_scatter_figure(trials.drop(columns="hp_lr"), ["constant"], "target_acc", "max") is None
