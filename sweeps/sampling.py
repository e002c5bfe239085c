"""Paired, reproducible trial plans: configurations drawn once, every arm runs every configuration.

- Configurations are drawn from ``numpy.random.default_rng(study.seed)`` in a
  fixed order (configuration by configuration, hyperparameters by name), so the
  same study file gives the same table, byte for byte.
- ``n_configs`` random draws are each combined with every point of the grid
  (the product of all ``grid`` parameters), like Ray Tune's ``num_samples``.
- Trial seeds come from ``numpy.random.SeedSequence`` over (study seed, stage,
  configuration, replicate); the arm is not part of it, so both arms of a
  configuration see the same seed — the pairing of the design.
- Confirm-stage seeds depend on the replicate only: every arm's chosen
  configuration is rerun with the same new seeds.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sweeps.schema import Choice, Grid, LogUniform, Study, Uniform

__all__ = ["TrialPlan", "sample_configs", "trial_seed", "search_trials", "confirm_trials", "select_configs", "trial_spec"]

_STAGE_INDEX = {"search": 0, "confirm": 1}


@dataclass(frozen=True)
class TrialPlan:
    """One trial of a study, before it runs: the pairing keys and its hyperparameters."""

    stage: str
    config_id: int
    arm: str
    seed: int
    replicate: int
    hp: dict[str, Any] = field(hash=False)

    @property
    def trial_key(self) -> str:
        return f"{self.stage}-{self.config_id}-{self.arm}-{self.seed}"


def _hyperparameter_types(study: Study) -> dict[str, type]:
    from benchmark.trial import task_module

    task = task_module(study.task)
    return {
        name: int if isinstance(h.default, int) and not isinstance(h.default, bool) else float
        for name, h in task.HYPERPARAMETERS.items()
    }


def _draw(parameter, rng: np.random.Generator) -> float:
    if isinstance(parameter, LogUniform):
        return float(math.exp(rng.uniform(math.log(parameter.low), math.log(parameter.high))))
    if isinstance(parameter, Uniform):
        return float(rng.uniform(parameter.low, parameter.high))
    if isinstance(parameter, Choice):
        return parameter.values[int(rng.integers(len(parameter.values)))]
    raise TypeError(f"cannot draw from {type(parameter).__name__}")


def _typed(value: Any, kind: type) -> Any:
    # Integer hyperparameters drawn from a continuous range are rounded (e.g. z_dim ~ loguniform(16, 256)).
    return int(round(value)) if kind is int else float(value)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (ints stay ints)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    return float(value)


def sample_configs(study: Study) -> pd.DataFrame:
    """The configuration table: ``config_id`` and one column per set hyperparameter (searched and fixed)."""
    types = _hyperparameter_types(study)
    rng = np.random.default_rng(study.seed)
    grid_names = sorted(name for name, p in study.search_space.items() if isinstance(p, Grid))
    random_names = sorted(name for name, p in study.search_space.items() if not isinstance(p, Grid))
    grid_points = list(itertools.product(*(study.search_space[name].values for name in grid_names)))
    rows = []
    for draw in range(study.n_configs):
        for point in grid_points:
            values = {}
            for name in random_names:
                parameter = study.search_space[name]
                value = _draw(parameter, rng)
                values[name] = value if isinstance(parameter, Choice) else _typed(value, types[name])
            values.update(dict(zip(grid_names, point)))
            values.update(study.fixed)
            rows.append({"config_id": len(rows), **{name: values[name] for name in sorted(values)}})
    return pd.DataFrame(rows)


def trial_seed(study_seed: int, stage: str, config_id: int, replicate: int) -> int:
    """A seed in [0, 2**31) from the design keys (not the arm): the same for every arm."""
    keys = [study_seed, _STAGE_INDEX[stage], config_id, replicate] if stage == "search" else [study_seed, _STAGE_INDEX[stage], replicate]
    return int(np.random.SeedSequence(keys).generate_state(1, dtype=np.uint32)[0] >> 1)


def _records(configs: pd.DataFrame) -> list[tuple[int, dict[str, Any]]]:
    """(config_id, hyperparameters) per row, as plain Python numbers (row-wise pandas access would upcast ints)."""
    records = []
    for record in configs.to_dict("records"):
        config_id = int(record.pop("config_id"))
        records.append((config_id, {name: _plain(value) for name, value in record.items()}))
    return records


def search_trials(study: Study, configs: pd.DataFrame) -> list[TrialPlan]:
    """Every configuration × replicate × arm, configuration by configuration (so pairs finish together)."""
    plans = []
    for config_id, hp in _records(configs):
        for replicate in range(study.seeds_per_config):
            seed = trial_seed(study.seed, "search", config_id, replicate)
            plans.extend(TrialPlan("search", config_id, arm, seed, replicate, hp) for arm in study.arm_names)
    return plans


def select_configs(study: Study, trials: pd.DataFrame) -> dict[str, list[int]]:
    """The ``confirm.top_k`` best configurations of each arm by mean validation metric over its seeds.

    Only search-stage trials with ``status == 'ok'`` and a finite validation
    metric count (a diverged configuration is never chosen); the direction
    comes from the rows' ``metric_mode``. Ties go to the lower ``config_id``.
    """
    if study.confirm is None:
        return {}
    chosen = {}
    search = trials[(trials["stage"] == "search") & (trials["status"] == "ok")]
    search = search[np.isfinite(search["val_metric"].astype(float))]
    for arm in study.arm_names:
        rows = search[search["arm"] == arm]
        if rows.empty:
            chosen[arm] = []
            continue
        modes = set(rows["metric_mode"])
        if len(modes) != 1 or not modes <= {"min", "max"}:
            raise ValueError(f"arm {arm!r}: expected one metric_mode of 'min'/'max', got {sorted(modes)}")
        # A diverged seed disqualifies its configuration: a config must have succeeded on every seed.
        all_rows = trials[(trials["stage"] == "search") & (trials["arm"] == arm)]
        failed = set(all_rows.loc[all_rows["status"] != "ok", "config_id"])
        means = rows[~rows["config_id"].isin(failed)].groupby("config_id")["val_metric"].mean()
        sign = 1.0 if modes == {"min"} else -1.0
        ranked = sorted(means.items(), key=lambda item: (sign * item[1], item[0]))
        chosen[arm] = [int(config_id) for config_id, _ in ranked[: study.confirm.top_k]]
    return chosen


def confirm_trials(study: Study, configs: pd.DataFrame, chosen: dict[str, list[int]]) -> list[TrialPlan]:
    """The confirm stage: each arm's chosen configurations rerun with ``confirm.n_seeds`` new seeds."""
    if study.confirm is None:
        return []
    by_id = dict(_records(configs))
    plans = []
    for arm in study.arm_names:
        for config_id in chosen.get(arm, []):
            for replicate in range(study.confirm.n_seeds):
                seed = trial_seed(study.seed, "confirm", config_id, replicate)
                plans.append(TrialPlan("confirm", config_id, arm, seed, replicate, by_id[config_id]))
    return plans


def trial_spec(study: Study, plan: TrialPlan, *, threads: int | None = None):
    """The :class:`benchmark.trial.TrialSpec` of a planned trial."""
    from benchmark.trial import TrialSpec

    return TrialSpec(
        task=study.task,
        dataset=study.dataset,
        arm=plan.arm,
        loss=study.loss,
        hp=dict(plan.hp),
        seed=plan.seed,
        study=study.name,
        stage=plan.stage,
        config_id=plan.config_id,
        scheduler=study.arm(plan.arm).scheduler_kwargs(),
        divergence=dict(study.divergence),
        options=dict(study.options),
        data_root=study.data_root,
        download=study.download,
        threads=threads,
    )
