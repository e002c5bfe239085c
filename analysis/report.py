"""The study report: `<study>/report/index.html` (self-contained), `report.md`,
figures as PNG + PDF, `headline.csv`, and the headline table for the terminal.

`build_report(path)` loads, analyses and writes one study;
`build_reports(path)` does every study under a results root and adds the
cross-study figure in `<root>/report/`.  Files are written to a temporary
name and renamed into place, through the same pyarrow filesystem the
results came from (so a report of an `s3://` study lands next to it).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
import posixpath
from dataclasses import dataclass

import numpy as np
import pandas as pd
import yaml

from . import plots
from .compare import HEADLINE_KS, StudyAnalysis, analyse_study
from .load import ResultsTableError, StudyResults, find_studies, load, resolve

__all__ = ["ReportFiles", "build_report", "build_reports", "write_report", "headline_table", "format_headline",
           "representative_traces"]

REPORT_DIRNAME = "report"


@dataclass(frozen=True)
class ReportFiles:
    out_dir: str
    index_html: str
    report_md: str
    figures: tuple[str, ...]  # stems written (each as .png and .pdf)


# ---------------------------------------------------------------- formatting


def _num(x, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—"
    return f"{x:.{digits}g}"


def _p(p) -> str:
    if p is None or not np.isfinite(p):
        return "—"
    return "<1e-4" if p < 1e-4 else f"{p:.4f}"


def _pct(x) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def _ratio_text(analysis: StudyAnalysis, arm: str) -> str:
    if arm == analysis.baseline:
        return "baseline"
    ratio = analysis.ratios.get(arm)
    return ratio.describe() if ratio is not None else "—"


def headline_table(analysis: StudyAnalysis) -> pd.DataFrame:
    """Per arm (columns), the headline quantities (rows); strings ready to print."""
    a = analysis
    metric = a.metric_name
    rows: dict[str, dict[str, str]] = {}
    for arm in a.arms:
        n, n_div = a.search_counts[arm]
        rate = a.divergence[(a.divergence["arm"] == arm) & (a.divergence["stage"] == "search")]
        rate_text = "—"
        if not rate.empty:
            r = rate.iloc[0]
            rate_text = f"{_pct(r['rate'])} [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]"
        curve = a.curves.get(arm)
        col = {
            "search trials (diverged)": f"{n} ({n_div})",
            f"divergence rate [{a.confidence:.0%} CI]": rate_text,
            f"best validation {metric}": _num(a.best_val[arm]),
        }
        for k in (*HEADLINE_KS, None):
            label = f"E[best {metric}] at k=N" if k is None else f"E[best {metric}] at k={k}"
            if curve is None:
                col[label] = "—"
                continue
            kk = curve.n if k is None else k
            value = curve.at(kk) if kk <= curve.n else float("nan")
            text = _num(value)
            if curve.lower is not None and kk <= curve.n and np.isfinite(value):
                i = np.flatnonzero(curve.ks == kk)[0]
                text += f" [{_num(curve.lower[i])}, {_num(curve.upper[i])}]"
            col[label] = text + (f" (N={curve.n})" if k is None else "")
        col[f"budget ratio vs {a.baseline or '—'}"] = _ratio_text(a, arm)
        for test, label in (("McNemar exact (two-sided)", "p divergence, McNemar (Holm)"),
                            ("Wilcoxon signed-rank", "p search, Wilcoxon (Holm)"),
                            ("Welch t", "p confirm, Welch t (Holm)"),
                            ("Mann-Whitney U", "p confirm, Mann-Whitney (Holm)")):
            c = a.comparison(arm, test)
            if arm == a.baseline:
                col[label] = "baseline"
            elif c is None:
                col[label] = "—"
            else:
                col[label] = _p(c.result.p_holm) if np.isfinite(c.result.p_value) else f"— ({c.result.reason})"
        stage = "confirm" if (arm, "confirm") in a.effects else "search"
        e = a.effects.get((arm, stage))
        if arm == a.baseline:
            col["improvement vs baseline"] = col["Δ mean [CI]"] = col["P(improvement)"] = "baseline"
        elif e is None:
            col["improvement vs baseline"] = col["Δ mean [CI]"] = col["P(improvement)"] = "—"
        else:
            col["improvement vs baseline"] = (f"{e.relative_improvement_pct:+.1f}% ({stage})"
                                              if np.isfinite(e.relative_improvement_pct) else "—")
            col["Δ mean [CI]"] = f"{_num(e.mean_difference)} [{_num(e.ci_low)}, {_num(e.ci_high)}]"
            col["P(improvement)"] = _num(e.prob_improvement, 3)
        rows[arm] = col
    return pd.DataFrame(rows)


def format_headline(analysis: StudyAnalysis) -> str:
    """The headline table as text for the terminal."""
    r = analysis.results
    title = (f"Study {analysis.name}: {analysis.metric_name} ({'lower' if analysis.mode == 'min' else 'higher'} "
             f"is better); {len(r.analysed)} trials analysed, {r.n_errors} error(s) excluded")
    with pd.option_context("display.max_colwidth", 60, "display.width", 200):
        return title + "\n" + headline_table(analysis).to_string()


def conclusions(analysis: StudyAnalysis) -> list[str]:
    """Plain sentences saying what the numbers show, one per comparison."""
    a = analysis
    out = []
    if a.baseline is None:
        return out
    base_rate = a.divergence[(a.divergence["arm"] == a.baseline) & (a.divergence["stage"] == "search")]
    for arm in a.arms:
        if arm == a.baseline:
            continue
        rate = a.divergence[(a.divergence["arm"] == arm) & (a.divergence["stage"] == "search")]
        mc = a.comparison(arm, "McNemar exact (two-sided)")
        if not rate.empty and not base_rate.empty:
            r, b = rate.iloc[0], base_rate.iloc[0]
            p = f"McNemar Holm-adjusted p = {_p(mc.result.p_holm)}" if mc and np.isfinite(mc.result.p_value) else (
                f"McNemar not computed: {mc.result.reason}" if mc else "")
            out.append(f"Divergence: {arm} {_pct(r['rate'])} [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}] of search "
                       f"trials vs {a.baseline} {_pct(b['rate'])} [{_pct(b['ci_low'])}, {_pct(b['ci_high'])}]; {p}.")
        ratio = a.ratios.get(arm)
        if ratio is not None:
            if ratio.reached:
                k_text = f"k={ratio.k}" if ratio.exact else f"at most k={ratio.k}"
                out.append(f"Tuning budget: {arm} reaches {a.baseline}'s expected best {a.metric_name} at its full "
                           f"budget (N={ratio.n} trials: {_num(ratio.target)}) with {k_text} trials, i.e. "
                           f"{'at least ' if not ratio.exact else ''}{ratio.ratio:.3g}× less tuning budget "
                           f"(N/k).")
            else:
                out.append(f"Tuning budget: {arm} does not reach {a.baseline}'s expected best {a.metric_name} at its "
                           f"full budget (N={ratio.n}, {_num(ratio.target)}) within its own {a.curves[arm].n} trials.")
        for stage, tests in (("confirm", ("Welch t", "Mann-Whitney U")), ("search", ("Wilcoxon signed-rank",))):
            e = a.effects.get((arm, stage))
            if e is None:
                continue
            ps = []
            for test in tests:
                c = a.comparison(arm, test)
                if c is not None:
                    ps.append(f"{test} Holm p = {_p(c.result.p_holm)}" if np.isfinite(c.result.p_value)
                              else f"{test}: {c.result.reason}")
            pct = e.relative_improvement_pct
            if np.isfinite(pct):
                verdict = f"{abs(pct):.1f}% {'better' if pct > 0 else 'worse'} than {a.baseline}"
            else:
                verdict = f"not comparable in relative terms with {a.baseline}"
            out.append(f"Quality ({stage} stage): {arm} is {verdict} in mean test {a.metric_name} "
                       f"(difference {_num(e.mean_difference)}, {a.confidence:.0%} CI [{_num(e.ci_low)}, "
                       f"{_num(e.ci_high)}]; P(improvement) = {_num(e.prob_improvement, 3)}; {'; '.join(ps)}).")
    return out


def _tests_table(analysis: StudyAnalysis) -> pd.DataFrame:
    rows = []
    for c in analysis.comparisons:
        r = c.result
        n_text, note = f"{r.n_arm} / {r.n_baseline}", r.reason or ""
        if c.question == "divergence" and c.arm in analysis.mcnemar:
            m = analysis.mcnemar[c.arm]
            n_text = f"{m.pairs} pairs"
            note = (f"discordant: {m.only_arm_diverged} only {c.arm} diverged, {m.only_baseline_diverged} only "
                    f"{c.baseline} diverged" + (f"; {note}" if note else ""))
        rows.append({"arm": c.arm, "vs": c.baseline, "question": c.question, "stage": c.stage, "test": r.test,
                     "alternative": r.alternative, "n (arm / baseline)": n_text,
                     "statistic": _num(r.statistic), "p": _p(r.p_value), "p (Holm)": _p(r.p_holm),
                     "note": note})
    return pd.DataFrame(rows)


def _effects_table(analysis: StudyAnalysis) -> pd.DataFrame:
    rows = []
    for (arm, stage), e in analysis.effects.items():
        rows.append({"arm": arm, "stage": stage, "design": "paired" if stage == "search" else "independent",
                     "relative improvement": f"{_num(e.relative_improvement_pct, 3)}%",
                     "Δ mean (arm − baseline)": _num(e.mean_difference),
                     f"{analysis.confidence:.0%} bootstrap CI": f"[{_num(e.ci_low)}, {_num(e.ci_high)}]",
                     "P(improvement)": _num(e.prob_improvement, 3), "note": e.reason or ""})
    return pd.DataFrame(rows)


def _divergence_table(analysis: StudyAnalysis) -> pd.DataFrame:
    d = analysis.divergence.copy()
    d["rate"] = d["rate"].map(_pct)
    d[f"{analysis.confidence:.0%} Wilson CI"] = [f"[{_pct(lo)}, {_pct(hi)}]" for lo, hi in
                                                 zip(analysis.divergence["ci_low"], analysis.divergence["ci_high"])]
    return d.drop(columns=["ci_low", "ci_high"])


def _reasons_table(analysis: StudyAnalysis) -> pd.DataFrame:
    table = analysis.reasons.reset_index()
    table.columns.name = None
    return table


def _provenance_table(results: StudyResults) -> pd.DataFrame:
    rows = []
    if results.manifest:
        for key, value in results.manifest.items():
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
            rows.append({"field": f"manifest: {key}", "value": text})
    t = results.trials
    for column in ("code_version", "host"):
        if column in t.columns:
            values = sorted(map(str, t[column].dropna().unique()))
            rows.append({"field": f"trials: {column}", "value": ", ".join(values[:10])
                         + (f" (+{len(values) - 10} more)" if len(values) > 10 else "")})
    for column, fn in (("started_at", "min"), ("finished_at", "max")):
        if column in t.columns and t[column].notna().any():
            rows.append({"field": f"trials: first {column}" if fn == "min" else f"trials: last {column}",
                         "value": str(getattr(t[column].dropna().astype(str), fn)())})
    if "wall_time_s" in t.columns:
        total = pd.to_numeric(t["wall_time_s"], errors="coerce").sum()
        rows.append({"field": "trials: total wall time", "value": f"{total / 3600:.2f} h ({total:.0f} s)"})
    rows.append({"field": "results location", "value": results.location})
    return pd.DataFrame(rows)


def _study_label(results: StudyResults) -> str:
    t = results.trials
    parts = [str(t[c].dropna().iloc[0]) for c in ("task", "dataset", "loss") if c in t.columns and t[c].notna().any()]
    return " / ".join(parts)


# ---------------------------------------------------------------- figures


def representative_traces(analysis: StudyAnalysis, per_arm: int = 3) -> dict[str, dict[str, pd.DataFrame]]:
    """A few search-stage trials per arm whose training curves are shown: the best and median by
    validation metric among those that did not diverge, and the earliest divergence."""
    curves = analysis.results.curves
    if curves is None or curves.empty:
        return {}
    by_key = {key: rows.sort_values("step") for key, rows in curves.groupby("trial_key", sort=False)}
    search = analysis.results.analysed
    search = search[search["stage"] == "search"]
    out = {}
    for arm in analysis.arms:
        rows = search[(search["arm"] == arm) & search["trial_key"].isin(by_key.keys())]
        chosen: dict[str, str] = {}
        ok = rows[~rows["diverged"] & np.isfinite(rows["val_metric"].to_numpy(float))]
        if not ok.empty:
            ok = ok.sort_values("val_metric", ascending=analysis.mode == "min", kind="stable")
            chosen["best"] = ok["trial_key"].iloc[0]
            chosen["median"] = ok["trial_key"].iloc[len(ok) // 2]
        div = rows[rows["diverged"]]
        if not div.empty:
            if "divergence_step" in div.columns:
                div = div.sort_values("divergence_step", kind="stable")
            chosen["diverged"] = div["trial_key"].iloc[0]
        traces, used = {}, set()
        for label, key in list(chosen.items())[:per_arm]:
            if key not in used:  # with one finished trial, "best" and "median" are the same
                used.add(key)
                traces[f"{label}: {key}"] = by_key[key]
        if traces:
            out[arm] = traces
    return out


def _figures(analysis: StudyAnalysis) -> dict[str, tuple[object | None, str, str]]:
    """name -> (figure or None, caption, why absent)."""
    a = analysis
    data = a.results.analysed
    search = data[data["stage"] == "search"]
    confirm = data[data["stage"] == "confirm"]
    band = f"{a.confidence:.0%} percentile bootstrap band over trials ({a.n_resamples} resamples)"
    figures = {
        "budget_curves": (
            plots.budget_curves_figure(a.curves, a.metric_name, a.mode, ratios=a.ratios, baseline=a.baseline),
            f"Expected test {a.metric_name} of the best-by-validation trial among k random-search trials, with a "
            f"{band}. Diverged trials stay in the pool with the penalty score.",
            "no search-stage curve could be computed",
        ),
        "divergence": (
            plots.divergence_figure(a.divergence),
            "Fraction of trials that diverged, per stage and arm, with Wilson 95% intervals; labels give counts.",
            "no trials",
        ),
        "lr_scatter": (
            plots.lr_scatter_figure(search, a.arms, a.metric_name, a.mode) if not search.empty else None,
            f"Search-stage learning rates, coloured by test {a.metric_name}; red crosses: diverged runs.",
            "no search-stage trials or no numeric hp_lr_d / hp_lr_g (or hp_lr) columns",
        ),
        "scheduler_traces": (
            plots.scheduler_traces_figure(representative_traces(a), a.ideal_loss),
            "Adversary learning-rate multiplier (top) and its smoothed loss (bottom) over training for "
            "representative search trials (best and median by validation, earliest divergence)"
            + ("; dashed: the ideal loss V*." if a.ideal_loss is not None else "; V* unknown (no ideal_loss column "
               "or study.yaml key)."),
            "no curves.parquet (or no curves for the search trials)",
        ),
        "confirm": (
            plots.confirm_figure(confirm, a.arms, a.metric_name, a.mode) if not confirm.empty else None,
            f"Confirm stage: test {a.metric_name} of each arm's best configuration over its seeds.",
            "no confirm stage",
        ),
    }
    return figures


# ---------------------------------------------------------------- writing


class _Writer:
    """Writes files under a directory of any pyarrow filesystem, each via a temp name + rename."""

    def __init__(self, out_dir: str):
        self.fs, self.root = resolve(out_dir)
        self.remote = "://" in out_dir
        self.fs.create_dir(self.root, recursive=True)

    def path(self, *parts: str) -> str:
        return (posixpath.join if self.remote else os.path.join)(self.root, *parts)

    def write(self, relative: str, data: bytes | str) -> str:
        if isinstance(data, str):
            data = data.encode("utf-8")
        final = self.path(relative)
        parent = posixpath.dirname(final) if self.remote else os.path.dirname(final)
        self.fs.create_dir(parent, recursive=True)
        tmp = f"{final}.tmp-{os.getpid()}"
        with self.fs.open_output_stream(tmp) as stream:
            stream.write(data)
        if not self.remote and os.path.exists(final):
            os.replace(tmp, final)  # atomic overwrite on a local disk
        else:
            self.fs.move(tmp, final)
        return final


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1150px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
.sub{color:#666;margin-top:0}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3} tr:nth-child(even) td{background:#fafafa}
figure{margin:1.2em 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#444;font-size:.9em;max-width:60em}
.notes{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em}
.conclusions li{margin:.3em 0}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.85em}
"""


def _html_table(df: pd.DataFrame, index: bool = False) -> str:
    if df is None or df.empty:
        return "<p><em>nothing to show</em></p>"
    return df.to_html(index=index, escape=True, border=0, na_rep="—")


def _md_table(df: pd.DataFrame, index: bool = False) -> str:
    if df is None or df.empty:
        return "_nothing to show_\n"
    frame = df.reset_index() if index else df
    cells = [[str(c) for c in frame.columns]] + [["—" if pd.isna(v) else str(v) for v in row]
                                                 for row in frame.itertuples(index=False)]
    esc = [[c.replace("|", "\\|").replace("\n", " ") for c in row] for row in cells]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(esc[0])]
    lines += ["| " + " | ".join(row) + " |" for row in esc[1:]]
    return "\n".join(lines) + "\n"


def _settings_text(results: StudyResults) -> str | None:
    if results.study_config is None:
        return None
    return yaml.safe_dump(results.study_config, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _method_notes(a: StudyAnalysis) -> list[str]:
    direction = "largest" if a.mode == "min" else "smallest"
    return [
        f"Rows with status 'error' are excluded ({a.results.n_errors} here). Diverged trials are results: they "
        f"stay in every pool with a penalty score, the worst finite value observed in the study "
        f"(validation {_num(a.penalty[0])}, test {_num(a.penalty[1])}: the {direction} {a.metric_name}).",
        "Tuning-budget curve: exact expectation over all k-subsets drawn without replacement "
        "(rank i of N, best last, wins with probability C(i−1, k−1)/C(N, k)); ties in validation are broken "
        "uniformly at random, i.e. tied trials share their mean test value.",
        f"Bands: {a.confidence:.0%} percentile bootstrap over trials, {a.n_resamples} resamples, "
        f"numpy Generator seed {a.seed}. Budget ratio = N / smallest k whose expected best reaches the baseline's "
        "value at k = N.",
        "Divergence: Wilson score intervals; exact McNemar test (binomial test of discordant pairs matched on "
        "stage, config_id and seed), two-sided.",
        f"Quality: one-sided tests in the direction of improvement ({a.metric_name} "
        f"{'lower' if a.mode == 'min' else 'higher'} is better) of the penalised test metric. Search stage: Wilcoxon "
        "signed-rank over configurations paired by config_id and seed. Confirm stage: Welch t and Mann–Whitney U. "
        "All p-values of this report are Holm-adjusted together. Effect: relative improvement of the mean, "
        "percentile bootstrap CI of the mean difference (scipy.stats.bootstrap), probability that an arm's run beats "
        "a baseline run (ties count half).",
    ]


def write_report(analysis: StudyAnalysis, out_dir: str) -> ReportFiles:
    """Write index.html, report.md, headline.csv and figures/ into `out_dir` (path or URI)."""
    a = analysis
    writer = _Writer(out_dir)
    headline = headline_table(a)
    embedded, figure_stems, absent = [], [], []
    for name, (fig, caption, why_absent) in _figures(a).items():
        if fig is None:
            absent.append(f"Figure '{name}' not drawn: {why_absent}.")
            continue
        png = plots.figure_bytes(fig, "png")
        writer.write(f"figures/{name}.png", png)
        writer.write(f"figures/{name}.pdf", plots.figure_bytes(fig, "pdf"))
        figure_stems.append(f"figures/{name}")
        embedded.append((name, caption, base64.b64encode(png).decode("ascii")))
    notes = a.notes + absent
    writer.write("headline.csv", headline.to_csv())

    tables = [
        ("Divergence by stage and arm", _divergence_table(a), False),
        ("Diverged trials by reason", _reasons_table(a), False),
        ("Hypothesis tests (Holm-adjusted across the report)", _tests_table(a), False),
        ("Effect sizes vs baseline", _effects_table(a), False),
    ]
    settings = _settings_text(a.results)
    provenance = _provenance_table(a.results)
    label = _study_label(a.results)
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    findings = conclusions(a)

    # --- HTML (self-contained: figures embedded as base64 PNG; PDFs alongside in figures/)
    h = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Study {h(a.name)}: report</title><style>{_CSS}</style></head><body>",
        f"<h1>Study <code>{h(a.name)}</code></h1>",
        f"<p class='sub'>{h(label)} · metric <b>{h(a.metric_name)}</b> "
        f"({'lower' if a.mode == 'min' else 'higher'} is better) · {len(a.results.analysed)} trials analysed"
        f" · arms: {h(', '.join(a.arms))} · generated {generated}</p>",
    ]
    if findings:
        parts.append("<h2>What the numbers say</h2><ul class='conclusions'>"
                     + "".join(f"<li>{h(s)}</li>" for s in findings) + "</ul>")
    if notes:
        parts.append("<div class='notes'><b>Missing or limited:</b><ul>"
                     + "".join(f"<li>{h(n)}</li>" for n in notes) + "</ul></div>")
    parts.append("<h2>Headline</h2>" + _html_table(headline, index=True))
    parts.append("<h2>Figures</h2>")
    for name, caption, b64 in embedded:
        parts.append(f"<figure id='{name}'><img alt='{h(name)}' src='data:image/png;base64,{b64}'>"
                     f"<figcaption>{h(caption)} <a href='figures/{name}.pdf'>PDF</a></figcaption></figure>")
    for title, df, index in tables:
        parts.append(f"<h2>{h(title)}</h2>" + _html_table(df, index=index))
    parts.append("<h2>Method</h2><ul>" + "".join(f"<li>{h(m)}</li>" for m in _method_notes(a)) + "</ul>")
    parts.append("<h2>Study settings</h2>" + (f"<pre>{h(settings)}</pre>" if settings else
                                               "<p><em>study.yaml not available</em></p>"))
    parts.append("<h2>Provenance</h2>" + _html_table(provenance))
    parts.append("</body></html>")
    index_html = writer.write("index.html", "\n".join(parts))

    # --- Markdown
    md = [f"# Study `{a.name}`\n", f"{label} · metric **{a.metric_name}** "
          f"({'lower' if a.mode == 'min' else 'higher'} is better) · {len(a.results.analysed)} trials analysed · "
          f"generated {generated}\n"]
    if findings:
        md.append("## What the numbers say\n")
        md += [f"- {s}" for s in findings] + [""]
    if notes:
        md.append("## Missing or limited\n")
        md += [f"- {n}" for n in notes] + [""]
    md += ["## Headline\n", _md_table(headline, index=True), "## Figures\n"]
    for name, caption, _ in embedded:
        md.append(f"![{name}](figures/{name}.png)\n\n{caption} ([PDF](figures/{name}.pdf))\n")
    for title, df, index in tables:
        md += [f"## {title}\n", _md_table(df, index=index)]
    md += ["## Method\n"] + [f"- {m}" for m in _method_notes(a)] + [""]
    md += ["## Study settings\n", f"```yaml\n{settings}```\n" if settings else "_study.yaml not available_\n"]
    md += ["## Provenance\n", _md_table(provenance)]
    report_md = writer.write("report.md", "\n".join(md))
    return ReportFiles(out_dir=out_dir, index_html=index_html, report_md=report_md, figures=tuple(figure_stems))


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts]) if "://" in base else os.path.join(base, *parts)


def build_report(path_or_uri: str, out_dir: str | None = None, *, seed: int = 0, n_resamples: int = 1000,
                 confidence: float = 0.95) -> tuple[StudyAnalysis, ReportFiles]:
    """Load one study, analyse it and write its report (default: `<study>/report/`)."""
    results = load(path_or_uri)
    analysis = analyse_study(results, np.random.default_rng(seed), n_resamples=n_resamples,
                             confidence=confidence, seed=seed)
    files = write_report(analysis, out_dir or _join(results.location, REPORT_DIRNAME))
    return analysis, files


def _dataset_of(analysis: StudyAnalysis) -> str:
    t = analysis.results.trials
    if "dataset" in t.columns and t["dataset"].notna().any():
        return str(t["dataset"].dropna().iloc[0])
    return analysis.name


def write_cross_study(analyses: list[StudyAnalysis], out_dir: str, study_dirs: list[str]) -> str | None:
    """The cross-study figure (a panel per dataset) and an index of the study reports, in `out_dir`."""
    # A panel per dataset; a dataset measured with two different metrics gets a panel per metric.
    panels: dict[tuple[str, str, str], dict] = {}
    names = [a.name for a in analyses]
    for a, study_dir in zip(analyses, study_dirs):
        key = (_dataset_of(a), a.metric_name, a.mode)
        # Two directories holding the same study name are told apart by their folder.
        label = a.name if names.count(a.name) == 1 else f"{a.name} ({os.path.basename(study_dir.rstrip('/'))})"
        panels.setdefault(key, {})[label] = {arm: c for arm, c in a.curves.items() if c is not None}
    datasets = [d for d, _, _ in panels]
    fig = plots.cross_study_figure([(d if datasets.count(d) == 1 else f"{d} ({m})", m, mode, studies)
                                    for (d, m, mode), studies in panels.items()])
    writer = _Writer(out_dir)
    rows = []
    for a, study_dir in zip(analyses, study_dirs):
        link = f"../{os.path.basename(study_dir.rstrip('/'))}/{REPORT_DIRNAME}/index.html"
        row = {"study": f"<a href='{html.escape(link)}'>{html.escape(a.name)}</a>", "dataset": html.escape(_dataset_of(a)),
               "metric": html.escape(f"{a.metric_name} ({a.mode})")}
        for arm in a.arms:
            n, n_div = a.search_counts[arm]
            curve = a.curves.get(arm)
            row[html.escape(f"{arm}: diverged / E[best] at N")] = (
                f"{n_div}/{n} / {_num(curve.at(curve.n)) if curve is not None else '—'}")
        for arm, ratio in a.ratios.items():
            row[html.escape(f"budget ratio {arm}")] = html.escape(ratio.describe())
        rows.append(row)
    table = pd.DataFrame(rows).to_html(index=False, escape=False, border=0, na_rep="—")
    body = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>All studies</title>",
            f"<style>{_CSS}</style></head><body><h1>All studies</h1>", table]
    if fig is not None:
        png = plots.figure_bytes(fig, "png")
        writer.write("cross_study.png", png)
        writer.write("cross_study.pdf", plots.figure_bytes(fig, "pdf"))
        body.append("<figure><img alt='cross-study budget curves' src='data:image/png;base64,"
                    f"{base64.b64encode(png).decode('ascii')}'><figcaption>Tuning-budget curves, a panel per "
                    "dataset. <a href='cross_study.pdf'>PDF</a></figcaption></figure>")
    else:
        body.append("<p><em>No budget curves to compare.</em></p>")
    body.append("</body></html>")
    return writer.write("index.html", "\n".join(body))


def build_reports(path_or_uri: str, *, seed: int = 0, n_resamples: int = 1000, on_study=None,
                  on_error=None) -> tuple[list[StudyAnalysis], str | None]:
    """Reports of every study found at `path_or_uri` (one study dir or a root of several).

    With more than one study, also writes `<root>/report/index.html` with the
    cross-study figure.  `on_study(analysis, files)` is called after each
    report; `on_error(study_dir, exc)` for a study whose tables are invalid
    (without it, the error propagates).
    """
    text = os.fspath(path_or_uri)
    study_dirs = find_studies(text)
    analyses, done_dirs = [], []
    for study_dir in study_dirs:
        try:
            analysis, files = build_report(study_dir, seed=seed, n_resamples=n_resamples)
        except ResultsTableError as exc:
            if on_error is None:
                raise
            on_error(study_dir, exc)
            continue
        analyses.append(analysis)
        done_dirs.append(study_dir)
        if on_study is not None:
            on_study(analysis, files)
    cross = None
    if len(study_dirs) > 1 and analyses:
        cross = write_cross_study(analyses, _join(text, REPORT_DIRNAME), done_dirs)
    return analyses, cross
