"""The user's path: a tiny study through the real sweep launcher (embedded Ray), then the report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

STUDY = {
    "name": "e2e",
    "task": "gan",
    "dataset": "digits",
    "seed": 11,
    "arms": ["constant", "gap_aware"],
    "n_configs": 3,
    "search_space": {
        "lr_d": {"type": "loguniform", "low": 1e-4, "high": 1e-1},
        "lr_g": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
    },
    "fixed": {"steps": 40, "eval_every": 20, "eval_samples": 100, "log_every": 5},
    "confirm": {"top_k": 1, "n_seeds": 2},
}


def _run(args, cwd, env):
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_report_builds_from_a_real_study_run_through_the_sweep_launcher(tmp_path):
    results = tmp_path / "results"
    study_file = tmp_path / "e2e.yaml"
    study_file.write_text(yaml.safe_dump({**STUDY, "results": str(results)}))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # Ray's socket paths must stay short: a temp dir directly under /tmp.
    ray_tmp = tempfile.mkdtemp(prefix="rg-e2e-", dir="/tmp")
    env["GAPAWARE_RAY_TMPDIR"] = ray_tmp
    try:
        sweep = _run(["-m", "sweeps", "run", str(study_file)], tmp_path, env)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    assert "make report" in sweep.stdout + sweep.stderr

    trials = pd.read_parquet(results / "e2e" / "trials.parquet")
    search = trials[trials["stage"] == "search"]
    assert len(search) == 6 and trials["trial_key"].is_unique
    assert set(trials["arm"]) == {"constant", "gap_aware"}
    assert (trials["stage"] == "confirm").sum() == 4  # top 1 per arm x 2 seeds

    report = _run(["-m", "analysis", "report", str(results / "e2e")], tmp_path, env)
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    assert "gap_aware" in report.stdout and "constant" in report.stdout
    html = (results / "e2e" / "report" / "index.html").read_text()
    assert html.count("data:image/png;base64,") >= 4  # budget curves, divergence, scatter, traces
    assert "Tuning-budget" in html or "tuning-budget" in html.lower()
    markdown = (results / "e2e" / "report" / "report.md").read_text()
    assert "gap_aware" in markdown and "McNemar" in markdown
