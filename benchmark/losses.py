"""Adversarial losses, each carrying the loss of its ideal adversary V*.

V* is the loss of the best *constant-output* adversary when the two (or K)
distributions it separates are identical — the value an adversary sits at
when the other player has won. The gap-aware scheduler keeps the adversary's
loss near it.

Every loss exposes ``adversary_loss(*outputs)``, one output tensor per group
the adversary tells apart (real, fake) / (source, target) / K classes, and the
GAN losses also ``generator_loss(fake_output)``. With D(·) the adversary's raw
output (a logit for the BCE losses) and σ the logistic function:

=================  =========================================================  ==========
loss               adversary loss                                              V*
=================  =========================================================  ==========
nonsaturating      BCE(D(x), 1) + BCE(D(G(z)), 0);  G: BCE(D(G(z)), 1)         log 4
minimax            same adversary;  G: -BCE(D(G(z)), 0) = E log(1 - σ(D))      log 4
least_squares      E (D(x) - 1)² + E D(G(z))²;  G: E (D(G(z)) - 1)²            0.5
hinge              E relu(1 - D(x)) + E relu(1 + D(G(z)));  G: -E D(G(z))      2
wasserstein[_gp]   E D(G(z)) - E D(x) (+ λ E (‖∇D(x̂)‖ - 1)² as penalty)        0
domain_bce         ½ (BCE(D(x_s), 1) + BCE(D(x_t), 0))  (DANN)                 log 2
multiclass         Σ_k p_k · E CE(D(x_k), k), priors p                          H(p)
=================  =========================================================  ==========

Each expectation is a batch mean. The Wasserstein gradient penalty is kept out
of ``adversary_loss`` (a constant critic has zero gradient, so its penalty λ
would be an artefact of the regulariser, not a gap): training adds
``penalty(...)``, the scheduler sees the Wasserstein estimate alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy import optimize

__all__ = [
    "AdversarialLoss",
    "LOSSES",
    "get_loss",
    "numeric_ideal_loss",
    "NonSaturatingLoss",
    "MinimaxLoss",
    "LeastSquaresLoss",
    "HingeLoss",
    "WassersteinLoss",
    "DomainBCELoss",
    "MulticlassAdversaryLoss",
]


def _entropy(priors: Sequence[float]) -> float:
    return float(-sum(p * math.log(p) for p in priors if p > 0))


class AdversarialLoss:
    """Base class: ``ideal_loss`` is V*, ``n_groups`` outputs go to ``adversary_loss``."""

    name = "adversarial"
    ideal_loss: float
    n_groups = 2
    output_dim = 1

    def adversary_loss(self, *outputs: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def generator_loss(self, fake_output: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.name} is not a GAN loss")

    def penalty(self, adversary, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Regulariser added to the adversary's training loss (0 unless the loss has one)."""
        return real.new_zeros(())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ideal_loss={self.ideal_loss:.6g})"


class _BCEAdversary(AdversarialLoss):
    ideal_loss = math.log(4.0)

    def adversary_loss(self, real_out, fake_out):
        return F.binary_cross_entropy_with_logits(
            real_out, torch.ones_like(real_out)
        ) + F.binary_cross_entropy_with_logits(fake_out, torch.zeros_like(fake_out))


class NonSaturatingLoss(_BCEAdversary):
    name = "nonsaturating"

    def generator_loss(self, fake_out):
        return F.binary_cross_entropy_with_logits(fake_out, torch.ones_like(fake_out))


class MinimaxLoss(_BCEAdversary):
    name = "minimax"

    def generator_loss(self, fake_out):
        return -F.binary_cross_entropy_with_logits(fake_out, torch.zeros_like(fake_out))


class LeastSquaresLoss(AdversarialLoss):
    name = "least_squares"
    ideal_loss = 0.5

    def adversary_loss(self, real_out, fake_out):
        return ((real_out - 1.0) ** 2).mean() + (fake_out**2).mean()

    def generator_loss(self, fake_out):
        return ((fake_out - 1.0) ** 2).mean()


class HingeLoss(AdversarialLoss):
    name = "hinge"
    ideal_loss = 2.0

    def adversary_loss(self, real_out, fake_out):
        return F.relu(1.0 - real_out).mean() + F.relu(1.0 + fake_out).mean()

    def generator_loss(self, fake_out):
        return -fake_out.mean()


class WassersteinLoss(AdversarialLoss):
    """WGAN critic loss; ``gp_weight > 0`` adds the WGAN-GP penalty (Gulrajani et al., 2017)."""

    name = "wasserstein"
    ideal_loss = 0.0

    def __init__(self, gp_weight: float = 0.0):
        if gp_weight < 0:
            raise ValueError(f"gp_weight must be >= 0, got {gp_weight!r}")
        self.gp_weight = float(gp_weight)
        if gp_weight > 0:
            self.name = "wasserstein_gp"

    def adversary_loss(self, real_out, fake_out):
        return fake_out.mean() - real_out.mean()

    def generator_loss(self, fake_out):
        return -fake_out.mean()

    def penalty(self, adversary, real, fake):
        if self.gp_weight == 0:
            return real.new_zeros(())
        alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
        mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(adversary(mixed).sum(), mixed, create_graph=True)
        return self.gp_weight * ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


class MulticlassAdversaryLoss(AdversarialLoss):
    """K-class adversary: ``adversary_loss(out_0, ..., out_{K-1})`` with out_k the logits on class-k inputs.

    Loss = Σ_k p_k · mean CE(out_k, k). The best constant adversary predicts p,
    so V* = H(p), the entropy of the class priors.
    """

    name = "multiclass"

    def __init__(self, priors: Sequence[float] = (0.5, 0.5)):
        priors = [float(p) for p in priors]
        if len(priors) < 2 or any(p <= 0 for p in priors) or not math.isclose(sum(priors), 1.0, abs_tol=1e-9):
            raise ValueError(f"priors must be >= 2 positive numbers summing to 1, got {priors!r}")
        self.priors = priors
        self.n_groups = self.output_dim = len(priors)
        self.ideal_loss = _entropy(priors)

    def adversary_loss(self, *outputs):
        if len(outputs) != self.n_groups:
            raise ValueError(f"expected {self.n_groups} output tensors (one per class), got {len(outputs)}")
        total = outputs[0].new_zeros(())
        for k, (prior, logits) in enumerate(zip(self.priors, outputs)):
            target = torch.full((logits.shape[0],), k, dtype=torch.long, device=logits.device)
            total = total + prior * F.cross_entropy(logits, target)
        return total


class DomainBCELoss(AdversarialLoss):
    """DANN's domain loss with a one-logit discriminator: ½ (BCE(D(x_s), 1) + BCE(D(x_t), 0)).

    It is the two-class, balanced case of :class:`MulticlassAdversaryLoss`, so
    V* = H(½, ½) = log 2.
    """

    name = "domain_bce"
    ideal_loss = _entropy((0.5, 0.5))

    def adversary_loss(self, source_out, target_out):
        return 0.5 * (
            F.binary_cross_entropy_with_logits(source_out, torch.ones_like(source_out))
            + F.binary_cross_entropy_with_logits(target_out, torch.zeros_like(target_out))
        )


LOSSES: dict[str, type[AdversarialLoss] | object] = {
    "nonsaturating": NonSaturatingLoss,
    "minimax": MinimaxLoss,
    "least_squares": LeastSquaresLoss,
    "hinge": HingeLoss,
    "wasserstein": WassersteinLoss,
    "wasserstein_gp": lambda gp_weight=10.0: WassersteinLoss(gp_weight=gp_weight),
    "domain_bce": DomainBCELoss,
    "multiclass": MulticlassAdversaryLoss,
}

GAN_LOSSES = ("nonsaturating", "minimax", "least_squares", "hinge", "wasserstein", "wasserstein_gp")


def get_loss(name: str, **kwargs) -> AdversarialLoss:
    """The loss registered as ``name``; unknown names raise a ``ValueError`` listing the known ones."""
    try:
        factory = LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; known losses: {', '.join(sorted(LOSSES))}") from None
    return factory(**kwargs)


def numeric_ideal_loss(loss: AdversarialLoss, *, starts: Sequence[float] = (-2.0, 0.0, 0.7, 2.0)) -> float:
    """Derive V* numerically: minimise the adversary loss over a constant output.

    Every group sees the same constant output vector θ (identical
    distributions); θ is found by L-BFGS from several starts. Works for any
    :class:`AdversarialLoss`, including user-defined ones.
    """

    def value_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        outputs = [t.reshape(1, -1).expand(4, -1) for _ in range(loss.n_groups)]
        if loss.output_dim == 1:
            outputs = [o.reshape(4) for o in outputs]
        value = loss.adversary_loss(*outputs)
        (grad,) = torch.autograd.grad(value, t)
        return float(value.detach()), grad.numpy()

    best = math.inf
    for start in starts:
        x0 = np.full(loss.output_dim, start, dtype=float)
        result = optimize.minimize(value_and_grad, x0, jac=True, method="L-BFGS-B")
        best = min(best, float(result.fun))
    return best
