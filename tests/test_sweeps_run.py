"""A whole study on an embedded Ray: both stages, a NaN trial recorded as diverged, resume without reruns."""

from __future__ import annotations

import io
import json
import math
import tempfile

import pandas as pd
import pytest
import yaml

from sweeps.cli import main as cli_main
from sweeps.launcher import ray_session, run_study

pytestmark = pytest.mark.slow

TINY = {
    "name": "tiny",
    "task": "gan",
    "dataset": "digits",
    "seed": 5,
    "arms": ["constant", "gap_aware"],
    "n_configs": 1,
    "search_space": {
        # Configuration 0 trains; configuration 1's absurd discriminator learning rate goes NaN.
        "lr_d": {"type": "grid", "values": [2.0e-4, 1.0e6]},
        "lr_g": {"type": "loguniform", "low": 1e-4, "high": 1e-3},
    },
    "fixed": {"steps": 30, "eval_every": 15, "eval_samples": 50, "log_every": 5},
    "confirm": {"top_k": 1, "n_seeds": 2},
}


@pytest.fixture(scope="module")
def ray_up():
    # One embedded Ray for the whole module; run_study joins it instead of starting its own.
    with tempfile.TemporaryDirectory(prefix="rg-", dir="/tmp") as ray_tmp:
        mp = pytest.MonkeyPatch()
        mp.setenv("GAPAWARE_RAY_TMPDIR", ray_tmp)
        mp.delenv("RAY_ADDRESS", raising=False)
        with ray_session(num_cpus=2):
            yield
        mp.undo()


@pytest.fixture(scope="module")
def finished(ray_up, tmp_path_factory):
    folder = tmp_path_factory.mktemp("study")
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY, "results": str(folder / "results")}))
    out = io.StringIO()
    outcome = run_study(path, stream=out)
    return path, outcome, out.getvalue()


def read(outcome, name: str) -> pd.DataFrame:
    return pd.read_parquet(f"{outcome.results_dir}/{name}")


def test_study_completes_with_one_row_per_trial(finished):
    path, outcome, output = finished
    assert outcome.exit_code == 0, output
    trials = read(outcome, "trials.parquet")
    assert trials["trial_key"].is_unique
    search = trials[trials["stage"] == "search"]
    assert len(search) == 2 * 2  # 2 configurations x 2 arms
    confirm = trials[trials["stage"] == "confirm"]
    assert len(confirm) == 2 * 2  # the best configuration of each arm x 2 seeds
    curves = read(outcome, "curves.parquet")
    assert set(curves["trial_key"]) == set(trials["trial_key"])
    assert {"step", "d_loss", "g_loss", "d_loss_ema", "lr_d", "lr_multiplier"} <= set(curves.columns)
    assert "make report" in output or "python -m analysis report" in output


def test_nan_trial_is_recorded_as_diverged(finished):
    _, outcome, output = finished
    trials = read(outcome, "trials.parquet").set_index("trial_key")
    absurd = trials[(trials["stage"] == "search") & (trials["hp_lr_d"] == 1.0e6)]
    assert len(absurd) == 2
    assert (absurd["status"] == "diverged").all() and absurd["diverged"].all()
    assert absurd["divergence_reason"].notna().all() and absurd["divergence_step"].notna().all()
    sane = trials[(trials["stage"] == "search") & (trials["hp_lr_d"] == 2.0e-4)]
    assert (sane["status"] == "ok").all() and sane["val_metric"].map(math.isfinite).all()
    assert "diverged" in output


def test_arms_share_configuration_and_seed(finished):
    _, outcome, _ = finished
    trials = read(outcome, "trials.parquet")
    for (stage, config_id), group in trials[trials["stage"] == "search"].groupby(["stage", "config_id"]):
        assert sorted(group["arm"]) == ["constant", "gap_aware"]
        assert group["seed"].nunique() == 1
        assert group["hp_lr_d"].nunique() == 1 and group["hp_lr_g"].nunique() == 1
    schedulers = trials.groupby("arm")["scheduler"].unique().to_dict()
    assert list(schedulers["constant"]) == ["constant"] and list(schedulers["gap_aware"]) == ["gap_aware"]


def test_confirm_stage_reruns_the_best_non_diverged_configuration(finished):
    _, outcome, _ = finished
    trials = read(outcome, "trials.parquet")
    confirm = trials[trials["stage"] == "confirm"]
    assert set(confirm["config_id"]) == {0}  # configuration 1 diverged under both arms
    assert confirm.groupby("arm")["seed"].apply(sorted).map(tuple).nunique() == 1  # same new seeds per arm
    assert not set(confirm["seed"]) & set(trials.loc[trials["stage"] == "search", "seed"])
    manifest = json.loads(open(f"{outcome.results_dir}/manifest.json").read())
    assert manifest["confirm_choice"] == {"constant": [0], "gap_aware": [0]}
    assert manifest["counts"] == {"search": {"ok": 2, "diverged": 2}, "confirm": {"ok": 4}}
    assert manifest["complete"] is True


def test_results_directory_holds_the_contract_files(finished):
    path, outcome, _ = finished
    from pathlib import Path

    folder = Path(outcome.results_dir)
    assert sorted(p.name for p in folder.iterdir()) == ["curves.parquet", "manifest.json", "study.yaml", "trials.parquet"]
    assert (folder / "study.yaml").read_bytes() == path.read_bytes()


def test_running_again_reruns_nothing(finished):
    path, outcome, _ = finished
    before = read(outcome, "trials.parquet").set_index("trial_key")["finished_at"]
    out = io.StringIO()
    again = run_study(path, stream=out)
    assert again.exit_code == 0
    assert "search: all 4 trials already finished" in out.getvalue()
    assert "confirm: all 4 trials already finished" in out.getvalue()
    after = read(again, "trials.parquet").set_index("trial_key")["finished_at"]
    pd.testing.assert_series_equal(before.sort_index(), after.sort_index())


def test_changed_study_is_refused_with_exit_status_2(finished, capsys):
    path, outcome, _ = finished
    changed = path.with_name("tiny_changed.yaml")
    data = yaml.safe_load(path.read_text())
    data["fixed"]["steps"] = 31
    changed.write_text(yaml.safe_dump(data))
    assert cli_main(["run", str(changed)]) == 2
    assert "--fresh" in capsys.readouterr().err
    assert len(read(outcome, "trials.parquet")) == 8  # untouched


def test_a_failing_trial_is_recorded_as_an_error_and_the_study_ends(ray_up, tmp_path):
    # The data are missing where the workers look for them: every trial fails, after its retries.
    study = {
        **TINY,
        "name": "nodata",
        "dataset": "mnist",
        "data_root": str(tmp_path / "empty"),
        "search_space": {"lr_d": {"type": "grid", "values": [2.0e-4]}},
        "confirm": None,
        "max_failures": 1,
        "results": str(tmp_path / "results"),
    }
    path = tmp_path / "nodata.yaml"
    path.write_text(yaml.safe_dump(study))
    out = io.StringIO()
    outcome = run_study(path, stream=out)
    assert outcome.exit_code == 1
    trials = read(outcome, "trials.parquet")
    assert len(trials) == 2 and (trials["status"] == "error").all()
    assert trials["error"].str.contains("mnist").all()
    assert "rerun to retry" in out.getvalue()


def test_a_study_that_cannot_fit_on_this_ray_stops_with_a_clear_message(ray_up, tmp_path, capsys):
    import ray

    too_many = int(ray.cluster_resources()["CPU"]) + 1  # per trial: no node could ever run one
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump({**TINY, "name": "big", "resources": {"cpus": too_many}, "results": str(tmp_path / "r")}))
    outcome = run_study(path, stream=io.StringIO())
    assert outcome.exit_code == 2
    assert "resources" in capsys.readouterr().err
    assert read(outcome, "trials.parquet").empty
