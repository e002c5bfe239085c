"""The DANN task: domain loss and V*, gradient reversal, short trials in every arm, divergence, resume."""

import math

import numpy as np
import pytest
import torch

from benchmark.losses import DomainBCELoss, get_loss
from benchmark.scheduler import gap_multiplier
from benchmark.tasks import dann
from benchmark.trial import TrialSpec, resolve, run_trial

PAIR = "digits->digits_m"
# A few seconds per trial on one CPU core: tiny nets, tiny batches, few steps.
SMALL = {"steps": 30, "batch_size": 16, "width": 0.25, "hidden": 16, "log_every": 5, "eval_every": 15}

CONTRACT_COLUMNS = {
    "study", "task", "dataset", "loss", "arm", "stage", "config_id", "seed", "trial_key", "status", "diverged",
    "divergence_reason", "divergence_step", "val_metric", "test_metric", "metric_name", "metric_mode",
    "steps_done", "wall_time_s", "code_version", "started_at", "finished_at", "host",
}


def small_trial(arm, *, hp=None, **spec):
    spec.setdefault("divergence", {"quality_threshold": None})
    return TrialSpec(task="dann", dataset=PAIR, arm=arm, hp={**SMALL, **(hp or {})}, threads=1, **spec)


def test_domain_loss_of_an_undecided_discriminator_is_the_ideal_loss_of_the_loss_object():
    loss = get_loss(dann.DEFAULT_LOSS)
    assert isinstance(loss, DomainBCELoss)
    logits = torch.zeros(7)  # D outputs 0.5 on every image of both domains
    assert loss.adversary_loss(logits, logits[:3]).item() == pytest.approx(math.log(2))
    assert loss.ideal_loss == pytest.approx(math.log(2))
    assert resolve(small_trial("gap_aware")).loss.ideal_loss == loss.ideal_loss


def test_the_trial_reads_v_star_from_the_loss_object(monkeypatch):
    # Move V* away from log 2: the moving average must start there and the
    # scheduler's multiplier must follow it, so no literal log 2 hides in the task.
    monkeypatch.setattr(DomainBCELoss, "ideal_loss", 3.0)
    result = run_trial(small_trial("gap_aware", hp={"steps": 8, "log_every": 1}, scheduler={"ema_decay": 0.9}))
    curves = result.curves
    expected, ema = [], 3.0
    for d_loss in curves["d_loss"]:
        ema = 0.9 * ema + 0.1 * d_loss
        expected.append(ema)
    np.testing.assert_allclose(curves["d_loss_ema"], expected, rtol=1e-6)
    np.testing.assert_allclose(
        curves["lr_multiplier"], [gap_multiplier(v, 3.0, 0.3, 0.3) for v in expected], rtol=1e-6
    )
    np.testing.assert_allclose(curves["lr_d"], dann.HYPERPARAMETERS["lr_d"].default * curves["lr_multiplier"])
    assert result.row["ideal_loss"] == 3.0


def test_lambda_schedule_rises_from_zero_to_lambda_max():
    assert dann.grl_lambda(0.0, 2.0) == 0.0
    assert dann.grl_lambda(0.5, 2.0) == pytest.approx(2.0 * (2 / (1 + math.exp(-5)) - 1))
    values = [dann.grl_lambda(p, 2.0) for p in np.linspace(0, 1, 11)]
    assert all(a < b for a, b in zip(values, values[1:])) and 1.99 < values[-1] < 2.0
    with pytest.raises(ValueError, match="progress"):
        dann.grl_lambda(1.5, 1.0)


@pytest.mark.parametrize("progress", [0.1, 0.7])
def test_gradient_reversal_flips_the_gradient_with_the_scheduled_lambda(progress):
    lam = dann.grl_lambda(progress, lambda_max=0.8)
    x = torch.randn(4, 5, requires_grad=True)
    weights = torch.randn(4, 5)
    y = dann.reverse_gradient(x, lam)
    assert torch.equal(y, x)  # identity forward
    (y * weights).sum().backward()
    torch.testing.assert_close(x.grad, -lam * weights)


def test_feature_extractor_gets_minus_lambda_times_the_domain_gradient_and_the_discriminator_the_plain_one():
    torch.manual_seed(0)
    features = dann.FeatureExtractor((3, 8, 8), width=0.25)
    disc = dann.DomainDiscriminator(features.out_features, hidden=8)
    loss = DomainBCELoss()
    x_s, x_t = torch.randn(6, 3, 8, 8), torch.randn(6, 3, 8, 8)
    lam = dann.grl_lambda(0.3, 1.0)

    def grads(reverse):
        f_s, f_t = features(x_s), features(x_t)
        if reverse:
            f_s, f_t = dann.reverse_gradient(f_s, lam), dann.reverse_gradient(f_t, lam)
        params = [*features.parameters(), *disc.parameters()]
        return torch.autograd.grad(loss.adversary_loss(disc(f_s), disc(f_t)), params)

    plain, reversed_ = grads(False), grads(True)
    n_features = len(list(features.parameters()))
    for p, r in zip(plain[:n_features], reversed_[:n_features]):
        torch.testing.assert_close(r, -lam * p)
    for p, r in zip(plain[n_features:], reversed_[n_features:]):
        torch.testing.assert_close(r, p)


@pytest.mark.parametrize("arm", dann.ARMS)
def test_a_short_trial_returns_finite_accuracies_and_the_full_row(arm):
    result = run_trial(small_trial(arm))
    row, curves = result.row, result.curves
    assert CONTRACT_COLUMNS <= set(row)
    assert {f"hp_{name}" for name in dann.HYPERPARAMETERS} <= set(row)
    assert row["status"] == "ok" and not row["diverged"] and row["steps_done"] == SMALL["steps"]
    assert (row["metric_name"], row["metric_mode"]) == ("target_acc", "max")
    for name in ("val_metric", "test_metric", "target_acc", "source_acc", "val_target_acc", "val_source_acc"):
        assert 0.0 <= row[name] <= 1.0, name
    assert row["test_metric"] == row["target_acc"] and row["val_metric"] == row["val_target_acc"]

    assert {"trial_key", "step", "d_loss", "g_loss", "d_loss_ema", "lr_d", "lr_multiplier", "cls_loss"} <= set(curves)
    logged = curves.dropna(subset=["cls_loss"])
    assert logged["step"].tolist() == list(range(5, 31, 5))
    assert curves.dropna(subset=["val_target_acc"])["step"].tolist() == [15, 30]
    lr_d = dann.HYPERPARAMETERS["lr_d"].default
    if arm == "source_only":
        assert logged[["d_loss", "d_loss_ema", "lr_d", "lr_multiplier"]].isna().all().all()
        np.testing.assert_allclose(logged["g_loss"], logged["cls_loss"])
    else:
        assert np.isfinite(logged[["d_loss", "d_loss_ema", "lr_d", "g_loss"]]).all().all()
        np.testing.assert_allclose(logged["lr_d"], lr_d * logged["lr_multiplier"])
        np.testing.assert_allclose(logged["g_loss"], logged["cls_loss"] - logged["grl_lambda"] * logged["d_loss"])
        if arm == "constant":
            assert (logged["lr_multiplier"] == 1.0).all()
        else:
            assert (logged["lr_multiplier"] != 1.0).any()


def test_source_selection_uses_source_validation_accuracy():
    row = run_trial(small_trial("constant", options={"selection": "source_val"})).row
    assert row["val_metric"] == row["val_source_acc"]
    assert row["test_metric"] == row["target_acc"]


def test_same_seed_gives_the_same_numbers():
    first, second = run_trial(small_trial("gap_aware", seed=3)), run_trial(small_trial("gap_aware", seed=3))
    for name in ("val_metric", "test_metric", "source_acc"):
        assert first.row[name] == second.row[name]
    assert first.curves.equals(second.curves)
    other = run_trial(small_trial("gap_aware", seed=4))
    assert not np.allclose(first.curves["d_loss"], other.curves["d_loss"])


def test_a_resumed_trial_continues_identically(tmp_path):
    spec = small_trial("gap_aware", seed=1)
    uninterrupted = run_trial(spec)

    class Crash(Exception):
        pass

    def crash_after_first_eval(step, metrics, checkpoint_dir):
        raise Crash(step)

    with pytest.raises(Crash):
        run_trial(spec, checkpoint_dir=tmp_path, on_eval=crash_after_first_eval)
    evaluated_after_resume = []
    resumed = run_trial(spec, checkpoint_dir=tmp_path, on_eval=lambda step, *_: evaluated_after_resume.append(step))
    assert evaluated_after_resume == [30]  # it started after the step-15 checkpoint, not from scratch
    for name in ("val_metric", "test_metric", "source_acc"):
        assert resumed.row[name] == uninterrupted.row[name]
    assert resumed.curves.equals(uninterrupted.curves)


@pytest.mark.parametrize("arm", ["constant", "gap_aware"])
def test_an_absurd_adversary_learning_rate_is_recorded_as_diverged(arm):
    row = run_trial(small_trial(arm, hp={"lr_d": 1e6}, divergence={})).row
    assert row["status"] == "diverged" and row["diverged"]
    assert row["divergence_reason"] in ("nonfinite", "explosion", "collapse", "quality")
    assert row["divergence_step"] <= SMALL["steps"]


def test_a_discriminator_that_wins_is_recorded_as_collapse():
    # Frozen features (tiny lr, no reversal): grey vs colour is easy to tell apart.
    spec = small_trial(
        "constant",
        hp={"steps": 100, "lr": 1e-9, "lambda_max": 0.0, "lr_d": 1e-2},
        divergence={"collapse_fraction": 0.5, "quality_threshold": None},
    )
    row = run_trial(spec).row
    assert (row["status"], row["divergence_reason"]) == ("diverged", "collapse")


def test_target_accuracy_below_the_threshold_is_recorded_as_quality_divergence():
    row = run_trial(small_trial("constant", divergence={"quality_threshold": 1.01})).row
    assert (row["status"], row["divergence_reason"]) == ("diverged", "quality")
    assert math.isfinite(row["test_metric"])


@pytest.mark.parametrize(
    "change, field",
    [
        ({"options": {"selection": "target_test"}}, "selection"),
        ({"hp": {"lambda_max": -1.0}}, "lambda_max"),
        ({"hp": {"beta1": 1.0}}, "beta1"),
        ({"hp": {"lr_d": 0.0}}, "lr_d"),
        ({"loss": "nonsaturating"}, "loss"),
    ],
)
def test_bad_settings_are_rejected_naming_the_field(change, field):
    with pytest.raises(ValueError, match=field):
        resolve(small_trial("constant", **change))


def test_a_dataset_that_is_not_a_domain_pair_is_rejected():
    with pytest.raises(ValueError, match="digits->digits_m"):
        resolve(TrialSpec(task="dann", dataset="digits", arm="constant", hp=SMALL))


def test_the_shipped_dann_studies():
    from pathlib import Path

    from sweeps.schema import load_study

    studies = Path(__file__).resolve().parent.parent / "sweeps" / "studies"
    quick = load_study(studies / "dann_quick.yaml")
    assert (quick.task, quick.dataset) == ("dann", "digits->digits_m")  # offline
    assert quick.arm_names == ["constant", "gap_aware"] and quick.resources.gpus == 0
    for name, pair in [("dann_mnist_mnistm", "mnist->mnist_m"), ("dann_svhn_mnist", "svhn->mnist"),
                       ("dann_mnist_usps", "mnist->usps")]:
        study = load_study(studies / f"{name}.yaml")
        assert study.dataset == pair and 0 < study.resources.gpus < 1 and study.total_configs >= 100
        for lr in ("lr", "lr_d"):
            assert math.log10(study.search_space[lr].high / study.search_space[lr].low) >= 3 - 1e-9  # 3 decades
