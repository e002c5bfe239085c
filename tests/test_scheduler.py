"""GapAwareLR and gap_multiplier against the paper's definition (DESIGN.md, the scheduler contract)."""

import math

import numpy as np
import pytest
import torch

from benchmark.scheduler import GapAwareLR, gap_multiplier

V_STAR = math.log(4.0)
X = 0.1 * V_STAR  # default x_min = x_max


def paper_multiplier(v, v_star, x_min, x_max, h_min, f_max):
    x = abs(v - v_star)
    if v > v_star:
        return min(max(f_max ** (x / x_max), 1.0), f_max)
    return min(max(h_min ** (x / x_min), h_min), 1.0)


@pytest.mark.parametrize(
    "v, expected",
    [
        (V_STAR, 1.0),
        (V_STAR + 0.5 * X, 2.0**0.5),
        (V_STAR - 0.5 * X, 0.1**0.5),
        (V_STAR + X, 2.0),
        (V_STAR - X, 0.1),
        (V_STAR + 3 * X, 2.0),  # clipped at f_max
        (V_STAR - 3 * X, 0.1),  # clipped at h_min
    ],
)
def test_multiplier_matches_paper_at_reference_points(v, expected):
    assert gap_multiplier(v, V_STAR, X, X, 0.1, 2.0) == pytest.approx(expected, rel=1e-12)


def test_multiplier_is_monotone_and_vectorised_over_numpy_and_torch():
    losses = np.linspace(0.0, 3.0, 301)
    values = gap_multiplier(losses, V_STAR, 0.05, 0.2, 0.2, 3.0)
    assert isinstance(values, np.ndarray) and values.shape == losses.shape
    assert np.all(np.diff(values) >= 0)
    assert values.min() == pytest.approx(0.2) and values.max() == pytest.approx(3.0)
    expected = [paper_multiplier(v, V_STAR, 0.05, 0.2, 0.2, 3.0) for v in losses]
    np.testing.assert_allclose(values, expected, rtol=1e-12)
    as_tensor = gap_multiplier(torch.tensor(losses), V_STAR, 0.05, 0.2, 0.2, 3.0)
    assert isinstance(as_tensor, torch.Tensor)
    np.testing.assert_allclose(as_tensor.numpy(), expected, rtol=1e-12)


def _optimizer(lrs=(1e-3,)):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr} for lr in lrs]
    return torch.optim.SGD(groups, lr=lrs[0])


def test_ema_update_and_lr_follow_the_definition_for_every_group():
    opt = _optimizer((1e-3, 5e-4))
    sched = GapAwareLR(opt, V_STAR)
    assert sched.smoothed_loss == V_STAR and sched.multiplier == 1.0
    expected_v = V_STAR
    for loss in [2.0, torch.tensor(1.7), 0.3, 0.2, 1.386]:
        opt.step()
        sched.step(loss)
        expected_v = 0.95 * expected_v + 0.05 * float(loss)
        assert sched.smoothed_loss == pytest.approx(expected_v, rel=1e-12)
        m = paper_multiplier(expected_v, V_STAR, X, X, 0.1, 2.0)
        assert sched.multiplier == pytest.approx(m, rel=1e-12)
        assert sched.get_last_lr() == pytest.approx([1e-3 * m, 5e-4 * m])
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-3 * m, 5e-4 * m])


def test_nonfinite_loss_leaves_the_moving_average_untouched():
    opt = _optimizer()
    sched = GapAwareLR(opt, V_STAR)
    opt.step()
    sched.step(2.0)
    before = sched.smoothed_loss
    sched.step(float("nan"))
    sched.step(float("inf"))
    assert sched.smoothed_loss == before and math.isfinite(opt.param_groups[0]["lr"])


def test_state_dict_round_trip_mid_run_gives_identical_later_learning_rates():
    losses = list(np.random.default_rng(0).uniform(0.1, 2.5, size=60))
    opt_a = _optimizer()
    sched_a = GapAwareLR(opt_a, V_STAR, ema_decay=0.9, h_min=0.2, f_max=3.0)
    for loss in losses[:30]:
        opt_a.step()
        sched_a.step(loss)
    saved_sched, saved_opt = sched_a.state_dict(), opt_a.state_dict()
    later_a = []
    for loss in losses[30:]:
        opt_a.step()
        sched_a.step(loss)
        later_a.append(sched_a.get_last_lr()[0])

    opt_b = _optimizer()
    sched_b = GapAwareLR(opt_b, V_STAR, ema_decay=0.9, h_min=0.2, f_max=3.0)
    opt_b.load_state_dict(saved_opt)
    sched_b.load_state_dict(saved_sched)
    assert sched_b.smoothed_loss == saved_sched["smoothed_loss"] != V_STAR
    later_b = []
    for loss in losses[30:]:
        opt_b.step()
        sched_b.step(loss)
        later_b.append(sched_b.get_last_lr()[0])
    assert later_a == later_b


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"h_min": 0.0}, "h_min"),
        ({"h_min": 1.5}, "h_min"),
        ({"f_max": 0.9}, "f_max"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"ema_decay": -0.1}, "ema_decay"),
        ({"x_min": -0.1}, "x_min"),
        ({"x_max": 0.0}, "x_max"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, field):
    with pytest.raises(ValueError, match=field):
        GapAwareLR(_optimizer(), V_STAR, **kwargs)


def test_zero_ideal_loss_needs_explicit_thresholds():
    with pytest.raises(ValueError, match="x_min"):
        GapAwareLR(_optimizer(), 0.0)
    opt = _optimizer()
    sched = GapAwareLR(opt, 0.0, x_min=0.5, x_max=0.5)
    opt.step()
    sched.step(0.5 / 0.05)  # EMA moves to 0.5 = x_max above V*
    assert sched.multiplier == pytest.approx(2.0)


def test_works_with_adam_and_real_training_steps():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = GapAwareLR(opt, V_STAR)
    for _ in range(5):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(torch.randn(8, 3)).squeeze(1), torch.ones(8))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step(loss)
    assert sched.get_last_lr()[0] == pytest.approx(1e-2 * sched.multiplier)
