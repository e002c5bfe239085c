"""Harness efficiency of a study on the embedded Ray: how much of the workers' time goes to trials.

    efficiency = Σ per-trial compute time / (wall time × concurrent workers)      (goal ≥ 0.90)
    overhead per trial = (wall time × concurrent workers − Σ compute time) / trials

Compute time of a trial is what ``benchmark.trial.run_trial`` measures around
its training (``wall_time_s``); everything else — Tune scheduling, worker
start-up, checkpoints handed to Tune, part files, table writes — is harness
overhead. Wall time runs from ``run_study`` being called on an already
started Ray to its return (the study file is validated once beforehand, as
the command line does before it starts Ray); Ray's start-up is its own line.

Two studies of 8 and 16 configurations (16 and 32 trials) run side by side:
the first gives the efficiency of a small study, start-up included; the
difference between them gives the steady-state cost of one more trial, and
what is left is the fixed start-up cost of a study (Tune, worker processes,
imports in the workers).

    python -m benchmarks bench_sweeps
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

STUDY = {
    "name": "bench",
    "task": "gan",
    "dataset": "digits",
    "seed": 1,
    "arms": ["constant", "gap_aware"],
    "n_configs": 8,
    "search_space": {
        "lr_d": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
        "lr_g": {"type": "loguniform", "low": 1e-4, "high": 1e-3},
    },
    # ~5 s trials with two evaluations (two checkpoints handed to Tune) each.
    "fixed": {"steps": 400, "eval_every": 200, "eval_samples": 200},
    "resources": {"cpus": 1, "gpus": 0},
}


def _run(n_configs: int, folder: Path, workers: int) -> tuple[float, pd.DataFrame]:
    from sweeps.launcher import run_study
    from sweeps.schema import load_study

    path = folder / f"bench{n_configs}.yaml"
    path.write_text(yaml.safe_dump({**STUDY, "name": f"bench{n_configs}", "n_configs": n_configs, "results": str(folder / "results")}))
    load_study(path)  # validated (and the task imported) before timing, as `python -m sweeps run` does before Ray starts
    started = time.perf_counter()
    outcome = run_study(path, stream=io.StringIO())
    wall = time.perf_counter() - started
    rows = pd.read_parquet(Path(outcome.results_dir) / "trials.parquet")
    trials = n_configs * len(STUDY["arms"])
    if outcome.exit_code != 0 or len(rows) != trials:
        raise RuntimeError(f"benchmark study did not complete: exit {outcome.exit_code}, {len(rows)}/{trials} rows")
    return wall, rows


def main() -> None:
    from sweeps.launcher import ray_session

    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-sweeps-") as name:
        folder = Path(name)
        ray_started = time.perf_counter()
        with ray_session(num_cpus=workers):
            ray_up = time.perf_counter() - ray_started
            small_wall, small = _run(8, folder, workers)
            large_wall, large = _run(16, folder, workers)
            ray_stopping = time.perf_counter()
        ray_down = time.perf_counter() - ray_stopping

    concurrent = min(workers, len(small))
    small_compute, large_compute = float(small["wall_time_s"].sum()), float(large["wall_time_s"].sum())
    efficiency = small_compute / (small_wall * concurrent)
    overhead = (small_wall * concurrent - small_compute) / len(small)
    extra_trials = len(large) - len(small)
    extra_capacity = (large_wall - small_wall) * concurrent
    marginal_efficiency = (large_compute - small_compute) / extra_capacity
    marginal_overhead = (extra_capacity - (large_compute - small_compute)) / extra_trials
    fixed = small_wall * concurrent - small_compute - marginal_overhead * len(small)
    print(f"workers: {concurrent} concurrent trials (1 CPU each); trials of {STUDY['fixed']['steps']} steps, "
          f"mean compute {small_compute / len(small):.2f} s")
    print(f"small study, {len(small)} trials:    wall {small_wall:.1f} s, harness efficiency {efficiency:.3f} "
          f"(goal >= 0.90), overhead per trial {overhead:.2f} s (start-up included)")
    print(f"larger study, {len(large)} trials:   wall {large_wall:.1f} s, harness efficiency "
          f"{large_compute / (large_wall * concurrent):.3f}")
    print(f"steady state (the {extra_trials} extra trials): harness efficiency {marginal_efficiency:.3f}, "
          f"overhead per trial {marginal_overhead:.2f} s")
    print(f"fixed start-up cost of a study: {fixed / concurrent:.1f} s of wall time per worker")
    print(f"embedded Ray start / shutdown:  {ray_up:.1f} s / {ray_down:.1f} s")


if __name__ == "__main__":
    main()
