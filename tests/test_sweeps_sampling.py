"""Paired, reproducible sampling: same file -> same configurations; arms share configuration and seed."""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest
import yaml

from sweeps.sampling import (
    confirm_trials,
    sample_configs,
    search_trials,
    select_configs,
    trial_seed,
    trial_spec,
)
from sweeps.schema import load_study, parse_study

STUDY = {
    "name": "paired",
    "task": "gan",
    "dataset": "digits",
    "seed": 11,
    "arms": ["constant", {"name": "gap_aware", "scheduler": {"h_min": 0.2}}],
    "n_configs": 3,
    "seeds_per_config": 2,
    "search_space": {
        "lr_d": {"type": "loguniform", "low": 1e-5, "high": 1e-1},
        "lr_g": {"type": "uniform", "low": 1e-4, "high": 2e-4},
        "beta1": {"type": "choice", "values": [0.0, 0.5]},
        "z_dim": {"type": "loguniform", "low": 8, "high": 128},
        "n_disc": {"type": "grid", "values": [1, 2]},
        "batch_size": {"type": "grid", "values": [32, 64]},
    },
    "fixed": {"steps": 30},
    "confirm": {"top_k": 2, "n_seeds": 3},
}


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def test_same_study_file_gives_the_same_configuration_table_byte_for_byte(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY))
    first = sample_configs(load_study(path, check_trials=False))
    second = sample_configs(load_study(path, check_trials=False))
    assert parquet_bytes(first) == parquet_bytes(second)
    assert first.to_csv(index=False).encode() == second.to_csv(index=False).encode()
    other_seed = sample_configs(parse_study({**STUDY, "seed": 12}, check_trials=False))
    assert not np.allclose(first["lr_d"], other_seed["lr_d"])


def test_grid_points_times_random_draws():
    study = parse_study(STUDY, check_trials=False)
    configs = sample_configs(study)
    assert len(configs) == 3 * 2 * 2 == study.total_configs
    assert list(configs["config_id"]) == list(range(12))
    # Every grid point appears once per random draw; the random values differ between configurations.
    assert configs.groupby(["n_disc", "batch_size"]).size().tolist() == [3, 3, 3, 3]
    assert configs["lr_d"].nunique() == 12
    assert configs["lr_d"].between(1e-5, 1e-1).all() and configs["lr_g"].between(1e-4, 2e-4).all()
    assert set(configs["beta1"]) <= {0.0, 0.5}
    # Integer hyperparameters drawn from a continuous range are whole numbers.
    assert configs["z_dim"].dtype.kind == "i" and configs["z_dim"].between(8, 128).all()
    assert (configs["steps"] == 30).all()


def test_log_uniform_covers_the_decades_evenly():
    study = parse_study({**STUDY, "n_configs": 400, "search_space": {"lr_d": STUDY["search_space"]["lr_d"]}}, check_trials=False)
    logs = np.log10(sample_configs(study)["lr_d"])
    counts, _ = np.histogram(logs, bins=4, range=(-5, -1))
    assert counts.min() > 60  # ~100 per decade; a uniform draw would put ~90 % in the top decade


def test_every_arm_runs_every_configuration_with_the_same_seed():
    study = parse_study(STUDY, check_trials=False)
    plans = search_trials(study, sample_configs(study))
    assert len(plans) == 12 * 2 * 2
    assert len({plan.trial_key for plan in plans}) == len(plans)
    by_pair: dict[tuple[int, int], list] = {}
    for plan in plans:
        by_pair.setdefault((plan.config_id, plan.replicate), []).append(plan)
    for pair in by_pair.values():
        assert sorted(plan.arm for plan in pair) == ["constant", "gap_aware"]
        assert len({plan.seed for plan in pair}) == 1
        assert pair[0].hp == pair[1].hp
    seeds = {plan.seed for plan in plans}
    assert len(seeds) == 12 * 2  # distinct per (configuration, replicate)


def test_seeds_are_deterministic_and_stage_specific():
    assert trial_seed(3, "search", 5, 1) == trial_seed(3, "search", 5, 1)
    assert trial_seed(3, "search", 5, 1) != trial_seed(3, "search", 5, 0)
    assert trial_seed(3, "search", 5, 1) != trial_seed(4, "search", 5, 1)
    assert 0 <= trial_seed(3, "confirm", 0, 2) < 2**31
    # Confirm seeds do not depend on the configuration: every arm's choice sees the same seeds.
    assert trial_seed(3, "confirm", 0, 2) == trial_seed(3, "confirm", 9, 2)


def results_table(rows):
    base = {"stage": "search", "metric_mode": "min", "status": "ok"}
    return pd.DataFrame([{**base, **row} for row in rows])


def test_confirm_choice_respects_the_metric_direction_and_skips_diverged():
    study = parse_study({**STUDY, "confirm": {"top_k": 2, "n_seeds": 1}}, check_trials=False)
    rows = []
    for arm in ("constant", "gap_aware"):
        for config_id, value in [(0, 30.0), (1, 10.0), (2, 20.0), (3, 5.0)]:
            for seed in (1, 2):
                rows.append({"arm": arm, "config_id": config_id, "seed": seed, "val_metric": value})
    table = results_table(rows)
    # Configuration 3 is the best, but one of its gap_aware seeds diverged.
    diverged = (table["arm"] == "gap_aware") & (table["config_id"] == 3) & (table["seed"] == 2)
    table.loc[diverged, ["status", "val_metric"]] = ["diverged", math.nan]
    chosen = select_configs(study, table)
    assert chosen == {"constant": [3, 1], "gap_aware": [1, 2]}
    maximised = table.assign(metric_mode="max")
    assert select_configs(study, maximised) == {"constant": [0, 2], "gap_aware": [0, 2]}


def test_an_arm_without_a_finished_configuration_gets_no_confirm_trials():
    study = parse_study(STUDY, check_trials=False)
    table = results_table(
        [
            {"arm": "constant", "config_id": 0, "seed": 1, "val_metric": 1.0},
            {"arm": "gap_aware", "config_id": 0, "seed": 1, "val_metric": math.nan, "status": "diverged"},
        ]
    )
    chosen = select_configs(study, table)
    assert chosen == {"constant": [0], "gap_aware": []}
    plans = confirm_trials(study, sample_configs(study), chosen)
    assert {plan.arm for plan in plans} == {"constant"}


def test_confirm_trials_rerun_the_chosen_configurations_with_new_shared_seeds():
    study = parse_study(STUDY, check_trials=False)
    configs = sample_configs(study)
    plans = confirm_trials(study, configs, {"constant": [4, 7], "gap_aware": [7, 1]})
    assert len(plans) == 4 * 3
    assert {plan.stage for plan in plans} == {"confirm"}
    search_seeds = {plan.seed for plan in search_trials(study, configs)}
    seeds_by_arm = {arm: sorted({p.seed for p in plans if p.arm == arm}) for arm in ("constant", "gap_aware")}
    assert seeds_by_arm["constant"] == seeds_by_arm["gap_aware"] and len(seeds_by_arm["constant"]) == 3
    assert not search_seeds & set(seeds_by_arm["constant"])
    seven = [p for p in plans if p.config_id == 7]
    expected = configs[configs["config_id"] == 7].iloc[0]
    assert all(p.hp["lr_d"] == pytest.approx(expected["lr_d"]) for p in seven)
    assert len({p.trial_key for p in plans}) == len(plans)


def test_trial_spec_carries_the_arm_scheduler_and_threads():
    study = parse_study(STUDY, check_trials=False)
    plans = search_trials(study, sample_configs(study))
    constant = trial_spec(study, next(p for p in plans if p.arm == "constant"), threads=2)
    gap = trial_spec(study, next(p for p in plans if p.arm == "gap_aware"), threads=2)
    assert constant.scheduler is None and gap.scheduler == {"h_min": 0.2}
    assert constant.threads == 2 and constant.study == "paired" and constant.stage == "search"
    assert constant.trial_key == plans[0].trial_key
    assert isinstance(constant.hp["n_disc"], int) and isinstance(constant.hp["lr_d"], float)
