"""Every adversarial loss's hand-written V* against the numeric derivation."""

import math

import pytest
import torch

from benchmark.losses import LOSSES, MulticlassAdversaryLoss, get_loss, numeric_ideal_loss

EXPECTED_V_STAR = {
    "nonsaturating": math.log(4),
    "minimax": math.log(4),
    "least_squares": 0.5,
    "hinge": 2.0,
    "wasserstein": 0.0,
    "wasserstein_gp": 0.0,
    "domain_bce": math.log(2),
    "multiclass": math.log(2),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_ideal_loss_matches_the_numeric_derivation(name):
    loss = get_loss(name)
    assert loss.ideal_loss == pytest.approx(EXPECTED_V_STAR[name], abs=1e-12)
    assert numeric_ideal_loss(loss) == pytest.approx(loss.ideal_loss, abs=1e-6)


@pytest.mark.parametrize("priors", [(0.2, 0.3, 0.5), (0.9, 0.1), (0.25,) * 4])
def test_multiclass_ideal_loss_is_the_entropy_of_the_priors(priors):
    loss = MulticlassAdversaryLoss(priors)
    assert loss.ideal_loss == pytest.approx(-sum(p * math.log(p) for p in priors))
    assert numeric_ideal_loss(loss) == pytest.approx(loss.ideal_loss, abs=1e-6)


def test_constant_half_discriminator_sits_at_v_star():
    logits = torch.zeros(16)
    assert float(get_loss("nonsaturating").adversary_loss(logits, logits)) == pytest.approx(math.log(4))
    assert float(get_loss("domain_bce").adversary_loss(logits, logits)) == pytest.approx(math.log(2))


def test_a_user_defined_loss_gets_its_v_star_numerically():
    class ScaledBCE(type(get_loss("nonsaturating"))):
        def adversary_loss(self, real_out, fake_out):
            return 3.0 * super().adversary_loss(real_out, fake_out)

    assert numeric_ideal_loss(ScaledBCE()) == pytest.approx(3 * math.log(4), abs=1e-6)


def test_gradient_penalty_is_zero_for_a_one_lipschitz_critic_and_positive_otherwise():
    loss = get_loss("wasserstein_gp")
    real, fake = torch.randn(32, 4), torch.randn(32, 4)
    unit = torch.nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        unit.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    assert float(loss.penalty(lambda x: unit(x).squeeze(1), real, fake).detach()) == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        unit.weight.mul_(3.0)
    assert float(loss.penalty(lambda x: unit(x).squeeze(1), real, fake).detach()) == pytest.approx(10 * 4.0, rel=1e-5)


def test_unknown_loss_lists_the_known_ones():
    with pytest.raises(ValueError, match="nonsaturating"):
        get_loss("vanilla")
