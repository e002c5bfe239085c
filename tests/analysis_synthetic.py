"""Synthetic study tables with exactly the columns of DESIGN.md's result-table contract, for the analysis tests.

The numbers come from a simple generative model with known structure: the
test metric is best near a learning-rate optimum, large adversary learning
rates diverge, and the `gap_aware` arm diverges less and scores better.  The
tests use it to exercise the analysis on realistic shapes (pairs, stages,
ties in divergence, missing pieces), never to assert a hard-coded number.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

IDEAL_LOSS = math.log(4.0)
REASONS = ("nonfinite", "collapse", "quality")


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _trial_row(study, arm, stage, config_id, seed, lr_d, lr_g, beta1, rng, mode, metric_name,
               scheduler_gain, divergence_shift):
    """One trial's row under the toy model."""
    robust = arm != "constant"
    # Divergence: likely when lr_d is large; the scheduler moves the cliff to the right.
    p_div = _sigmoid(4.0 * (np.log10(lr_d) + 2.3 - (divergence_shift if robust else 0.0)))
    diverged = bool(rng.random() < p_div)
    distance = (np.log10(lr_d) + 3.3) ** 2 + 0.5 * (np.log10(lr_g) + 3.5) ** 2
    if mode == "min":  # an FID-like metric
        quality = (20.0 + 25.0 * distance) * (scheduler_gain if robust else 1.0)
        val = quality * np.exp(rng.normal(0, 0.06))
        test = quality * np.exp(rng.normal(0, 0.06))
    else:  # an accuracy-like metric
        quality = 0.9 - 0.08 * distance + (0.02 if robust else 0.0)
        val = float(np.clip(quality + rng.normal(0, 0.01), 0, 1))
        test = float(np.clip(quality + rng.normal(0, 0.01), 0, 1))
    reason, step = None, None
    if diverged:
        reason = REASONS[int(rng.integers(len(REASONS)))]
        step = int(rng.integers(10, 200))
        if reason == "nonfinite":
            val = test = float("nan")
        elif reason == "quality":  # finished, but far worse than the threshold
            val, test = (val * 4, test * 4) if mode == "min" else (val * 0.3, test * 0.3)
    trial_key = f"{stage}-{config_id}-{arm}-{seed}"
    row = {
        "study": study, "task": "gan" if mode == "min" else "dann", "dataset": "digits",
        "loss": "non_saturating" if mode == "min" else "dann_bce",
        "arm": arm, "stage": stage, "config_id": config_id, "seed": seed, "trial_key": trial_key,
        "hp_lr_d": lr_d, "hp_lr_g": lr_g, "hp_beta1": beta1, "hp_steps": 200,
        "status": "diverged" if diverged else "ok", "diverged": diverged,
        "divergence_reason": reason, "divergence_step": step,
        "val_metric": float(val), "test_metric": float(test),
        "metric_name": metric_name, "metric_mode": mode,
        "steps_done": step if diverged else 200, "wall_time_s": float(rng.uniform(5, 9)),
        "ideal_loss": IDEAL_LOSS if mode == "min" else math.log(2.0),
        "code_version": "synthetic-0", "started_at": "2024-01-01T00:00:00Z",
        "finished_at": "2024-01-01T00:00:09Z", "host": "testhost",
    }
    if mode == "min":
        row.update(fid=float(test), kid_mean=float(test) / 1000, kid_std=0.001)
    else:
        row.update(target_acc=float(test), source_acc=0.98)
    return row


def make_trials(rng: np.random.Generator, *, study: str = "synth", n_configs: int = 24, seeds=(0,),
                arms=("constant", "gap_aware"), confirm_seeds: int = 5, mode: str = "min",
                metric_name: str | None = None, scheduler_gain: float = 0.85, divergence_shift: float = 0.7,
                n_errors: int = 0) -> pd.DataFrame:
    """A trials table: search stage (paired configs × seeds × arms) then a confirm stage per arm."""
    metric_name = metric_name or ("fid" if mode == "min" else "target_acc")
    configs = [(cid, 10 ** rng.uniform(-5, -1), 10 ** rng.uniform(-5, -2), float(rng.choice([0.0, 0.5])))
               for cid in range(n_configs)]
    rows = [_trial_row(study, arm, "search", cid, seed, lr_d, lr_g, b1, rng, mode, metric_name,
                       scheduler_gain, divergence_shift)
            for cid, lr_d, lr_g, b1 in configs for seed in seeds for arm in arms]
    search = pd.DataFrame(rows)
    if confirm_seeds:
        for arm in arms:
            ok = search[(search["arm"] == arm) & ~search["diverged"]]
            if ok.empty:
                continue
            best = ok.sort_values("val_metric", ascending=(mode == "min")).iloc[0]
            cid = int(best["config_id"])
            _, lr_d, lr_g, b1 = configs[cid]
            rows += [_trial_row(study, arm, "confirm", cid, 100 + s, lr_d, lr_g, b1, rng, mode, metric_name,
                                scheduler_gain, divergence_shift - 1.0)  # the best config rarely diverges
                     for s in range(confirm_seeds)]
    for i in range(n_errors):
        row = dict(rows[i % len(rows)])
        # As the trial code writes them: no metric name or mode, an 'error' message instead.
        row.update(stage="search", config_id=10_000 + i, seed=0, status="error", diverged=False,
                   divergence_reason=None, divergence_step=None, val_metric=float("nan"),
                   test_metric=float("nan"), trial_key=f"search-{10_000 + i}-{row['arm']}-0",
                   metric_name=None, metric_mode=None, error="RuntimeError: worker lost", steps_done=0)
        rows.append(row)
    trials = pd.DataFrame(rows)
    trials["divergence_step"] = trials["divergence_step"].astype("Int64")
    trials["steps_done"] = trials["steps_done"].astype("Int64")
    return trials


def make_curves(trials: pd.DataFrame, rng: np.random.Generator, *, log_every: int = 10) -> pd.DataFrame:
    """Long-format training curves: the smoothed adversary loss drifts from V*; the scheduler pulls it back."""
    frames = []
    for row in trials[trials["status"] != "error"].itertuples(index=False):
        steps = np.arange(0, int(row.steps_done) + 1, log_every)
        drift = np.cumsum(rng.normal(-0.004 * np.log10(row.hp_lr_d / 1e-4), 0.02, size=steps.size))
        if row.arm != "constant":
            drift *= 0.3
        d_loss = IDEAL_LOSS + drift + rng.normal(0, 0.05, size=steps.size)
        ema = IDEAL_LOSS + drift
        x = np.abs(ema - IDEAL_LOSS) / (0.1 * IDEAL_LOSS)
        multiplier = np.where(ema > IDEAL_LOSS, np.clip(2.0 ** x, 1, 2.0), np.clip(0.1 ** x, 0.1, 1))
        if row.arm == "constant":
            multiplier = np.ones_like(multiplier)
        frames.append(pd.DataFrame({
            "trial_key": row.trial_key, "step": steps, "d_loss": d_loss, "g_loss": 1.0 + drift,
            "d_loss_ema": ema, "lr_d": row.hp_lr_d * multiplier, "lr_multiplier": multiplier,
            "fid": np.where(steps == steps[-1], row.test_metric, np.nan),
        }))
    curves = pd.concat(frames, ignore_index=True)
    curves["step"] = curves["step"].astype("int64")
    return curves


def write_parquet(df: pd.DataFrame, path: str) -> None:
    tmp = f"{path}.tmp"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), tmp)
    os.replace(tmp, path)


def study_config(name: str = "synth") -> dict:
    return {
        "name": name, "task": "gan", "dataset": "digits", "loss": "non_saturating",
        "arms": [{"name": "constant"}, {"name": "gap_aware", "scheduler": {"h_min": 0.1, "f_max": 2.0}}],
        "search_space": {"lr_d": {"loguniform": [1e-5, 1e-1]}, "lr_g": {"loguniform": [1e-5, 1e-2]}},
        "n_configs": 24, "seeds": 1, "confirm": {"top_k": 1, "n_seeds": 5},
    }


def write_study(directory: str, trials: pd.DataFrame, curves: pd.DataFrame | None = None, *,
                config: dict | None = None, manifest: dict | None = None) -> str:
    """Write a study directory the way the sweep launcher lays it out; returns the directory."""
    os.makedirs(directory, exist_ok=True)
    write_parquet(trials, os.path.join(directory, "trials.parquet"))
    if curves is not None:
        write_parquet(curves, os.path.join(directory, "curves.parquet"))
    if config is not None:
        with open(os.path.join(directory, "study.yaml"), "w") as handle:
            yaml.safe_dump(config, handle, sort_keys=False)
    if manifest is not None:
        with open(os.path.join(directory, "manifest.json"), "w") as handle:
            json.dump(manifest, handle)
    return directory


def full_study(directory: str, seed: int = 0, **kwargs) -> str:
    """A complete synthetic study (both tables, study.yaml, manifest.json) written to `directory`."""
    rng = np.random.default_rng(seed)
    trials = make_trials(rng, **kwargs)
    curves = make_curves(trials, rng)
    name = str(trials["study"].iloc[0])
    counts = trials["status"].value_counts().to_dict()
    manifest = {"study": name, "study_sha256": "0" * 64, "code_version": "synthetic-0",
                "packages": {"numpy": np.__version__}, "counts": {k: int(v) for k, v in counts.items()}}
    return write_study(directory, trials, curves, config=study_config(name), manifest=manifest)
