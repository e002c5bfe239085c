"""The GAN trial end to end on the bundled digits: both arms, divergence, determinism, resume, CLI."""

import json
import math

import pandas as pd
import pytest

from benchmark.__main__ import main as cli_main
from benchmark.trial import CHECKPOINT_FILE, TrialSpec, resolve, run_trial

pytestmark = pytest.mark.slow

SHORT = {"steps": 200, "eval_every": 100, "eval_samples": 300, "log_every": 10}
CONTRACT_COLUMNS = {
    "study", "task", "dataset", "loss", "arm", "stage", "config_id", "seed", "trial_key", "status",
    "diverged", "divergence_reason", "divergence_step", "val_metric", "test_metric", "metric_name",
    "metric_mode", "steps_done", "wall_time_s", "code_version", "started_at", "finished_at", "host",
}


@pytest.mark.parametrize("arm", ["constant", "gap_aware"])
def test_short_digits_trial_finishes_with_finite_fid_in_both_arms(arm):
    result = run_trial(TrialSpec(arm=arm, hp={"lr_d": 2e-4, "lr_g": 2e-4, **SHORT}, seed=1, threads=1))
    row = result.row
    assert CONTRACT_COLUMNS <= set(row)
    assert {"hp_lr_d", "hp_lr_g", "hp_beta1", "hp_steps"} <= set(row)
    assert row["trial_key"] == f"search-0-{arm}-1" and row["status"] in ("ok", "diverged")
    assert math.isfinite(row["val_metric"]) and math.isfinite(row["test_metric"]) and row["test_metric"] > 0
    assert row["metric_name"] == "fid" and row["metric_mode"] == "min" and row["steps_done"] == 200
    assert row["ideal_loss"] == pytest.approx(math.log(4))
    curves = result.curves
    assert set(curves.columns) >= {"trial_key", "step", "d_loss", "g_loss", "d_loss_ema", "lr_d", "lr_multiplier"}
    assert len(curves) == 20 and curves["val_fid"].notna().sum() == 2
    if arm == "constant":
        assert (curves["lr_multiplier"] == 1.0).all() and (curves["lr_d"] == 2e-4).all()
    else:
        assert curves["lr_multiplier"].nunique() > 1
        assert curves["lr_d"].to_numpy() == pytest.approx(2e-4 * curves["lr_multiplier"].to_numpy())


def test_absurd_discriminator_lr_is_recorded_as_diverged_not_raised():
    result = run_trial(TrialSpec(arm="constant", hp={"lr_d": 1e6, **SHORT}, threads=1))
    assert result.row["status"] == "diverged" and result.row["diverged"]
    assert result.row["divergence_reason"] in ("nonfinite", "explosion")
    assert 0 < result.row["divergence_step"] < 200 and result.row["steps_done"] == result.row["divergence_step"]
    assert math.isnan(result.row["val_metric"])


def test_same_seed_same_numbers_and_checkpoint_resume_continues_identically(tmp_path):
    spec = TrialSpec(arm="gap_aware", hp={"lr_d": 5e-4, "steps": 120, "eval_every": 40, "eval_samples": 200}, threads=1)
    first, second = run_trial(spec), run_trial(spec)
    assert first.row["test_metric"] == second.row["test_metric"]
    pd.testing.assert_frame_equal(first.curves, second.curves)

    class Interrupted(RuntimeError):
        pass

    def crash_at_80(step, metrics, checkpoint_dir):
        if step == 80:
            raise Interrupted

    with pytest.raises(Interrupted):
        run_trial(spec, checkpoint_dir=tmp_path, on_eval=crash_at_80)
    assert (tmp_path / CHECKPOINT_FILE).exists()
    seen = []
    resumed = run_trial(spec, checkpoint_dir=tmp_path, on_eval=lambda step, m, d: seen.append(step))
    assert seen == [120]  # continued after step 80, not from the start
    assert resumed.row["test_metric"] == first.row["test_metric"]
    pd.testing.assert_frame_equal(resumed.curves, first.curves)


def test_invalid_settings_are_rejected_before_training():
    with pytest.raises(ValueError, match="lr_dd"):
        resolve(TrialSpec(hp={"lr_dd": 1.0}))
    with pytest.raises(ValueError, match="beta1"):
        resolve(TrialSpec(hp={"beta1": 1.5}))
    with pytest.raises(ValueError, match="arm"):
        resolve(TrialSpec(arm="cosine"))
    with pytest.raises(ValueError, match="x_min"):
        resolve(TrialSpec(loss="wasserstein"))  # V* = 0 needs explicit thresholds
    with pytest.raises(ValueError, match="unknown dataset"):
        run_trial(TrialSpec(dataset="imagenet", hp=SHORT))


def test_cli_writes_the_row_and_curves(tmp_path, capsys):
    out = tmp_path / "row.json"
    status = cli_main(
        ["trial", "--task", "gan", "--dataset", "digits", "--arm", "gap_aware",
         "--set", "lr_d=1e-3", "lr_g=2e-4", "steps=60", "eval_every=30", "eval_samples=100", "seed=3",
         "--threads", "1", "--out", str(out)]
    )
    assert status == 0
    line = capsys.readouterr().out
    assert "search-0-gap_aware-3" in line and "test_fid=" in line
    row = json.loads(out.read_text())
    assert row["hp_lr_d"] == 1e-3 and row["seed"] == 3 and row["steps_done"] == 60
    curves = pd.read_parquet(out.with_suffix(".curves.parquet"))
    assert curves["trial_key"].unique().tolist() == ["search-0-gap_aware-3"]


def test_cli_help_lists_every_hyperparameter_with_its_default(capsys):
    with pytest.raises(SystemExit):
        cli_main(["trial", "--help"])
    text = capsys.readouterr().out
    for name in ("lr_d", "lr_g", "beta1", "beta2", "steps", "n_disc", "eval_every"):
        assert name in text
    assert "default 0.0002" in text
