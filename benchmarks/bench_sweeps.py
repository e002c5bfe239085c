"""Harness efficiency of a study on the embedded Ray: how much of the workers' time goes to trials.

    efficiency = Σ per-trial compute time / (wall time × concurrent workers)      (goal ≥ 0.90)
    overhead per trial = (wall time × concurrent workers − Σ compute time) / trials

Compute time of a trial is what ``benchmark.trial.run_trial`` measures around
its training (``wall_time_s``); everything else — Tune scheduling, worker
start-up, checkpoints handed to Tune, part files, table writes — is harness
overhead. Wall time runs from ``run_study`` being called on an already
started Ray to its return (the study file is validated once beforehand, as
the command line does before it starts Ray); Ray's start-up is its own line.

Besides the whole-study numbers (start-up included: Tune, worker processes,
imports in the workers, the last trials running while other workers idle),
the steady state is measured from the driver's timeline of the trials after
each worker's first: the time a trial holds its worker beyond its compute
time, plus the wait between one trial ending and the next one starting.

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
    "n_configs": 12,
    "search_space": {
        "lr_d": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
        "lr_g": {"type": "loguniform", "low": 1e-4, "high": 1e-3},
    },
    # Trial settings of the default study (filled in from sweeps/studies/quick.yaml below):
    # trials as long as a user's first study runs, with their evaluations and checkpoints.
    "resources": {"cpus": 1, "gpus": 0},
}


QUICK_STUDY = Path(__file__).resolve().parent.parent / "sweeps" / "studies" / "quick.yaml"


def _steady_state(timeline: dict[str, list[float]], compute: dict[str, float], workers: int) -> tuple[float, float]:
    """(harness time per trial, mean compute) over the trials after each worker's first."""
    spans = sorted((start, end, key) for key, (start, end) in timeline.items())
    ends = sorted(end for _, end, _ in spans)
    held, waits, computes = [], [], []
    for start, end, key in spans[workers:]:
        held.append(end - start - compute[key])
        # The worker that runs this trial became free at the latest completion before it started.
        free_since = max((e for e in ends if e <= start), default=start)
        waits.append(start - free_since)
        computes.append(compute[key])
    n = len(held)
    return (sum(held) + sum(waits)) / n, sum(computes) / n


def main() -> None:
    from sweeps.launcher import ray_session, run_study
    from sweeps.schema import load_study

    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="bench-sweeps-") as name:
        folder = Path(name)
        path = folder / "bench.yaml"
        quick = yaml.safe_load(QUICK_STUDY.read_text())
        path.write_text(yaml.safe_dump({**STUDY, "fixed": quick["fixed"], "results": str(folder / "results")}))
        load_study(path)  # validated (and the task imported) before timing, as `python -m sweeps run` does before Ray starts
        ray_started = time.perf_counter()
        with ray_session(num_cpus=workers):
            ray_up = time.perf_counter() - ray_started
            started = time.perf_counter()
            outcome = run_study(path, stream=io.StringIO())
            wall = time.perf_counter() - started
            ray_stopping = time.perf_counter()
        ray_down = time.perf_counter() - ray_stopping
        rows = pd.read_parquet(Path(outcome.results_dir) / "trials.parquet")

    trials = STUDY["n_configs"] * len(STUDY["arms"])
    if outcome.exit_code != 0 or len(rows) != trials:
        raise RuntimeError(f"benchmark study did not complete: exit {outcome.exit_code}, {len(rows)}/{trials} rows")
    concurrent = min(workers, trials)
    compute = rows.set_index("trial_key")["wall_time_s"].astype(float)
    efficiency = compute.sum() / (wall * concurrent)
    overhead = (wall * concurrent - compute.sum()) / trials
    steady_overhead, steady_compute = _steady_state(outcome.timeline, compute.to_dict(), concurrent)
    print(f"study: {trials} trials of the quick study's length on {concurrent} concurrent workers "
          f"(1 CPU each), mean compute {compute.mean():.2f} s per trial")
    print(f"study wall time:            {wall:.1f} s (embedded Ray already running)")
    print(f"harness efficiency:         {efficiency:.3f}  (goal >= 0.90; start-up and last-trial tail included)")
    print(f"harness overhead per trial: {overhead:.2f} s  (= wall x workers - compute, per trial)")
    print(f"steady state, after each worker's first trial: {steady_overhead:.3f} s per trial, "
          f"efficiency {steady_compute / (steady_compute + steady_overhead):.3f}")
    print(f"embedded Ray start / shutdown: {ray_up:.1f} s / {ray_down:.1f} s")


if __name__ == "__main__":
    main()
