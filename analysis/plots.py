"""Figures of a study.  Each function returns a matplotlib `Figure` (or None when
the data it needs is absent); `save_figure` writes it as PNG and PDF.

Figures are built with `matplotlib.figure.Figure` directly -- no pyplot, no
global state: importing this module changes no rcParams and selects no
backend, and figures are freed when dropped.
"""

from __future__ import annotations

import io
import os
from typing import Mapping, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter, NullLocator

from .budget import BudgetCurve

__all__ = [
    "arm_colors",
    "figure_bytes",
    "save_figure",
    "budget_curves_figure",
    "divergence_figure",
    "lr_scatter_figure",
    "scheduler_traces_figure",
    "confirm_figure",
    "cross_study_figure",
]

_FIXED_COLORS = {"constant": "#1f77b4", "gap_aware": "#ff7f0e"}
_OTHER_COLORS = ["#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
DPI = 110


def arm_colors(arms: Sequence[str]) -> dict[str, str]:
    """A stable colour per arm: baseline blue, scheduler orange, others from a fixed list."""
    colors, others = {}, iter(_OTHER_COLORS * 4)
    for arm in arms:
        colors[arm] = _FIXED_COLORS.get(arm) or next(others)
    return colors


def figure_bytes(fig: Figure, fmt: str) -> bytes:
    """The figure rendered as 'png' or 'pdf'."""
    buffer = io.BytesIO()
    # PDF metadata without a creation date keeps reports byte-stable across runs.
    metadata = {"CreationDate": None} if fmt == "pdf" else None
    fig.savefig(buffer, format=fmt, dpi=DPI, metadata=metadata)  # constrained layout already fits
    return buffer.getvalue()


def save_figure(fig: Figure, stem: str | os.PathLike) -> list[str]:
    """Write `<stem>.png` and `<stem>.pdf` (local paths); returns the paths."""
    paths = []
    for fmt in ("png", "pdf"):
        path = f"{os.fspath(stem)}.{fmt}"
        with open(path, "wb") as handle:
            handle.write(figure_bytes(fig, fmt))
        paths.append(path)
    return paths


def _metric_label(metric_name: str, mode: str) -> str:
    return f"{metric_name} ({'lower' if mode == 'min' else 'higher'} is better)"


def _draw_budget_curves(ax, curves: Mapping[str, BudgetCurve], colors: Mapping[str, str], label_prefix: str = "",
                        linestyle: str = "-") -> None:
    for arm, curve in curves.items():
        if curve is None or not np.all(np.isfinite(curve.expected)):
            continue
        color = colors[arm]
        ax.plot(curve.ks, curve.expected, color=color, linestyle=linestyle, lw=1.8,
                label=f"{label_prefix}{arm} (N={curve.n})")
        if curve.lower is not None:
            ax.fill_between(curve.ks, curve.lower, curve.upper, color=color, alpha=0.18, lw=0)
    _log_budget_axis(ax, max((c.n for c in curves.values() if c is not None), default=1))


def _log_budget_axis(ax, n_max: int) -> None:
    """Log-x axis for budgets labelled with plain integers (1, 2, 5, 10, 1,000), not 2×10⁰."""
    ax.set_xscale("log")

    def plain(x, _pos=None, mantissas=None):
        if x < 1 or abs(x - round(x)) > 1e-6 * x:
            return ""
        if mantissas is not None and round(x / 10 ** np.floor(np.log10(x))) not in mantissas:
            return ""
        return f"{x:,.0f}"

    ax.xaxis.set_major_formatter(FuncFormatter(plain))
    # Label some minor ticks (2, 3, 5, 20, ...) only when the axis spans little more than a decade.
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda x, pos: plain(x, pos, mantissas=(2, 3, 5)))
                                 if n_max <= 30 else NullFormatter())
    ax.grid(True, which="both", alpha=0.3)


def budget_curves_figure(curves: Mapping[str, BudgetCurve], metric_name: str, mode: str,
                         title: str | None = None, ratios: Mapping | None = None,
                         baseline: str | None = None) -> Figure | None:
    """Expected best test metric vs number of trials k, one line and bootstrap band per arm.

    With `ratios` ({arm: BudgetRatio}) the baseline's full-budget value is drawn
    as a dotted line and the k where each arm reaches it is marked.
    """
    curves = {arm: c for arm, c in curves.items() if c is not None and np.all(np.isfinite(c.expected))}
    if not curves:
        return None
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    colors = arm_colors(list(curves))
    _draw_budget_curves(ax, curves, colors)
    target_drawn = False
    for arm, ratio in (ratios or {}).items():
        if arm not in curves or not np.isfinite(ratio.target):
            continue
        if not target_drawn:
            ax.axhline(ratio.target, color="gray", ls=":", lw=1, label=f"{baseline or 'baseline'} at k=N")
            target_drawn = True
        if ratio.reached:
            y = curves[arm].at(ratio.k) if ratio.k in curves[arm].ks else ratio.target
            ax.plot([ratio.k], [y], marker="o", ms=8, mfc="none", ls="none", color=colors[arm],
                    label=f"{arm} reaches it at k={ratio.k}")
    first = next(iter(curves.values()))
    band = f", {first.confidence:.0%} bootstrap band" if first.lower is not None else ""
    ax.set_xlabel("tuning budget k (random-search trials)")
    ax.set_ylabel(f"expected best {_metric_label(metric_name, mode)}")
    ax.set_title(title or f"Tuning-budget curves{band}", fontsize=11)
    ax.legend(fontsize=9)
    return fig


def divergence_figure(rates: pd.DataFrame) -> Figure | None:
    """Divergence rate per arm (and stage) with Wilson intervals."""
    if rates.empty:
        return None
    stages = list(dict.fromkeys(rates["stage"])) if "stage" in rates else [None]
    arms = list(dict.fromkeys(rates["arm"]))
    colors = arm_colors(arms)
    fig = Figure(figsize=(max(4.0, 1.6 + 1.3 * len(arms) * len(stages)), 3.8), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(arms)
    for j, arm in enumerate(arms):
        for s, stage in enumerate(stages):
            row = rates[(rates["arm"] == arm) & ((rates["stage"] == stage) if stage is not None else True)]
            if row.empty:
                continue
            row = row.iloc[0]
            x = s + (j - (len(arms) - 1) / 2) * width
            err = [[row["rate"] - row["ci_low"]], [row["ci_high"] - row["rate"]]]
            ax.bar(x, row["rate"], width=width * 0.9, color=colors[arm], label=arm if s == 0 else None)
            ax.errorbar(x, row["rate"], yerr=err, color="black", capsize=4, lw=1)
            ax.annotate(f"{int(row['diverged'])}/{int(row['trials'])}", (x, row["ci_high"]),
                        xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
    ax.set_xticks(range(len(stages)), [f"{s} stage" if s else "" for s in stages])
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("fraction of trials diverged")
    ax.set_title("Divergence rate (Wilson 95% interval)", fontsize=11)
    ax.legend(fontsize=9)
    return fig


def _positive(values: pd.Series) -> bool:
    v = values.to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return v.size > 0 and bool(np.all(v > 0))


def lr_scatter_figure(trials: pd.DataFrame, arms: Sequence[str], metric_name: str, mode: str) -> Figure | None:
    """lr_d × the other player's lr per arm, coloured by the test metric, diverged runs marked with a cross.

    The other player is the generator (``hp_lr_g``) in GANs and the feature
    extractor + classifier (``hp_lr``) in domain-adversarial nets.
    """
    other = next((c for c in ("hp_lr_g", "hp_lr") if c in trials.columns), None)
    if other is None or "hp_lr_d" not in trials.columns or trials.empty:
        return None
    if not all(pd.api.types.is_numeric_dtype(trials[c]) for c in ("hp_lr_d", other)):
        return None
    fig = Figure(figsize=(4.2 * len(arms) + 1.2, 4.0), layout="constrained")
    axes = fig.subplots(1, len(arms), sharex=True, sharey=True, squeeze=False)[0]
    ok_metric = trials.loc[~trials["diverged"], "test_metric"].to_numpy(dtype=float)
    ok_metric = ok_metric[np.isfinite(ok_metric)]
    cmap = matplotlib.colormaps["viridis_r" if mode == "min" else "viridis"]  # better = brighter
    norm = Normalize(*(np.percentile(ok_metric, [2, 98]) if ok_metric.size else (0, 1)))
    if ok_metric.size and ok_metric.min() > 0 and ok_metric.max() / ok_metric.min() > 30:
        norm = LogNorm(*np.percentile(ok_metric, [2, 98]))
    mappable = None
    for ax, arm in zip(axes, arms):
        rows = trials[trials["arm"] == arm]
        good = rows[~rows["diverged"] & np.isfinite(rows["test_metric"].to_numpy(dtype=float))]
        bad = rows[rows["diverged"] | ~np.isfinite(rows["test_metric"].to_numpy(dtype=float))]
        mappable = ax.scatter(good["hp_lr_d"], good[other], c=good["test_metric"], cmap=cmap, norm=norm,
                              s=36, edgecolors="black", linewidths=0.4)
        ax.scatter(bad["hp_lr_d"], bad[other], marker="x", color="#d62728", s=40, lw=1.5,
                   label=f"diverged ({len(bad)})")
        ax.set_title(f"{arm}: {len(rows)} trials", fontsize=10)
        ax.set_xlabel("lr_d (adversary)")
        ax.legend(fontsize=8, loc="best")  # "best" keeps the legend off the markers
        ax.grid(True, which="major", alpha=0.3)
    if _positive(trials["hp_lr_d"]):
        axes[0].set_xscale("log")
    if _positive(trials[other]):
        axes[0].set_yscale("log")
    axes[0].set_ylabel(other.removeprefix("hp_") + (" (generator)" if other == "hp_lr_g" else " (features + classifier)"))
    if ok_metric.size and mappable is not None:
        fig.colorbar(mappable, ax=list(axes), label=f"test {_metric_label(metric_name, mode)}")
    fig.suptitle("Search-stage learning rates", fontsize=11)
    return fig


def scheduler_traces_figure(traces: Mapping[str, Mapping[str, pd.DataFrame]], ideal_loss: float | None) -> Figure | None:
    """Multiplier and smoothed adversary loss over training for a few trials per arm.

    `traces`: arm -> {label: curves rows of one trial (step-sorted)}.
    """
    traces = {arm: t for arm, t in traces.items() if t}
    if not traces:
        return None
    arms = list(traces)
    fig = Figure(figsize=(4.4 * len(arms), 5.6), layout="constrained")
    # Shared y per row: how far each arm's adversary loss strays from V* is comparable at a glance.
    axes = fig.subplots(2, len(arms), sharex="col", sharey="row", squeeze=False)
    line_colors = ["#1b9e77", "#7570b3", "#d95f02", "#e7298a", "#66a61e"]
    for j, arm in enumerate(arms):
        top, bottom = axes[0, j], axes[1, j]
        for (label, rows), color in zip(traces[arm].items(), line_colors):
            # Eval-only rows of the curves table have NaN losses: drop them rather than break the line.
            if "lr_multiplier" in rows:
                part = rows[["step", "lr_multiplier"]].dropna()
                top.plot(part["step"], part["lr_multiplier"], color=color, lw=1.2, label=label)
            loss_column = "d_loss_ema" if "d_loss_ema" in rows else "d_loss"
            if loss_column in rows:
                part = rows[["step", loss_column]].dropna()
                bottom.plot(part["step"], part[loss_column], color=color, lw=1.2, label=label)
        if ideal_loss is not None and np.isfinite(ideal_loss):
            bottom.axhline(ideal_loss, color="black", ls="--", lw=1, label=f"V* = {ideal_loss:.3g}")
        top.set_title(arm, fontsize=10)
        bottom.set_xlabel("training step")
        for ax in (top, bottom):
            ax.grid(True, alpha=0.3)
        bottom.legend(fontsize=7)
    multipliers = [np.asarray(rows["lr_multiplier"], dtype=float) for t in traces.values() for rows in t.values()
                   if "lr_multiplier" in rows]
    finite = np.concatenate(multipliers) if multipliers else np.array([1.0])
    finite = finite[np.isfinite(finite) & (finite > 0)]
    top = axes[0, 0]
    top.set_yscale("log")
    # The scheduler's range is [h_min, f_max] (0.1 and 2 by default): show at least that.
    top.set_ylim(min(0.08, finite.min(initial=1.0) / 1.2), max(2.5, finite.max(initial=1.0) * 1.2))
    top.yaxis.set_major_locator(FixedLocator([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50]))
    top.yaxis.set_major_formatter("{x:g}")
    top.yaxis.set_minor_locator(NullLocator())
    top.yaxis.set_minor_formatter(NullFormatter())
    top.set_ylabel("adversary lr multiplier (log)")
    axes[1, 0].set_ylabel("smoothed adversary loss")
    fig.suptitle("Gap-aware scheduler over training (representative trials)", fontsize=11)
    return fig


def confirm_figure(confirm: pd.DataFrame, arms: Sequence[str], metric_name: str, mode: str) -> Figure | None:
    """Confirm-stage test metric per arm: box plot with every seed shown; diverged seeds marked."""
    arms = [a for a in arms if (confirm["arm"] == a).any()]
    if not arms:
        return None
    colors = arm_colors(arms)
    fig = Figure(figsize=(1.8 + 1.6 * len(arms), 4.0), layout="constrained")
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)  # fixed jitter so the figure is reproducible
    data = []
    for i, arm in enumerate(arms):
        rows = confirm[confirm["arm"] == arm]
        values = rows["test_metric"].to_numpy(dtype=float)
        finite = np.isfinite(values) & ~rows["diverged"].to_numpy()
        data.append(values[finite])
        jitter = rng.uniform(-0.12, 0.12, size=values.size)
        ax.scatter(i + jitter[finite], values[finite], color=colors[arm], s=22, zorder=3, edgecolors="black",
                   linewidths=0.3)
        n_div = int((~finite).sum())
        if n_div:
            ax.annotate(f"{n_div} diverged", (i, 0.02), xycoords=("data", "axes fraction"), ha="center",
                        color="#d62728", fontsize=8)
    ax.boxplot(data, positions=range(len(arms)), widths=0.5, showfliers=False,
               medianprops={"color": "black"})
    ax.set_xticks(range(len(arms)), arms)
    ax.set_ylabel(f"test {_metric_label(metric_name, mode)}")
    ax.set_title("Confirm stage: best configuration per arm, all seeds", fontsize=11)
    ax.grid(True, axis="y", alpha=0.3)
    return fig


def cross_study_figure(panels: Sequence[tuple[str, str, str, Mapping[str, Mapping[str, BudgetCurve]]]]) -> Figure | None:
    """One panel per dataset: budget curves of every study on it.

    `panels`: (dataset, metric_name, mode, {study: {arm: curve}}) per panel.
    """
    panels = [p for p in panels if any(c for c in p[3].values())]
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig = Figure(figsize=(4.6 * cols, 3.8 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    styles = ["-", "--", ":", "-."]
    for ax, (dataset, metric_name, mode, studies) in zip(axes, panels):
        arms = list(dict.fromkeys(a for curves in studies.values() for a in curves))
        colors = arm_colors(arms)
        for s, (study, curves) in enumerate(studies.items()):
            prefix = f"{study}: " if len(studies) > 1 else ""
            _draw_budget_curves(ax, curves, colors, label_prefix=prefix, linestyle=styles[s % len(styles)])
        ax.set_title(dataset, fontsize=11)
        ax.set_xlabel("tuning budget k")
        ax.set_ylabel(f"expected best {_metric_label(metric_name, mode)}", fontsize=9)
        ax.legend(fontsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("Tuning-budget curves across studies", fontsize=12)
    return fig
