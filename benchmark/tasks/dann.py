"""The domain-adaptation trial: DANN (Ganin et al., 2016) with or without the gap-aware scheduler.

Nets: a feature extractor F (two conv blocks sized from the image shape), a
label classifier C and a domain discriminator D (one logit: source vs
target). Per step, a labelled source batch (x_s, y_s) and an unlabelled
target batch x_t are drawn and

    L_cls = CE(C(F(x_s)), y_s)
    L_dom = ½ · (mean BCE(D(R_λ(F(x_s))), 1) + mean BCE(D(R_λ(F(x_t))), 0))
          (``DomainBCELoss``; its ideal adversary loss V* = log 2)

where R_λ is the gradient reversal layer: the identity forward, −λ × the
gradient backward. One backward pass of L_cls + L_dom then gives

    D        the gradient of  L_dom                (D minimises the domain loss)
    F        the gradient of  L_cls − λ · L_dom    (F maximises it: domain-invariant features)
    C        the gradient of  L_cls

λ follows DANN's schedule λ(p) = λ_max · (2 / (1 + exp(−10 p)) − 1), with
p = (step − 1) / steps the training progress, so the adversarial signal
fades in. D has its own Adam(lr_d, beta1, beta2); the ``gap_aware`` arm
multiplies lr_d by :class:`~benchmark.scheduler.GapAwareLR`'s factor, fed
with L_dom. F and C share Adam(lr, beta1, beta2, weight_decay). The
``source_only`` arm trains F and C on L_cls alone (no D, λ = 0): the
reference a domain-adversarial net has to beat.

Logged every ``log_every`` steps (the curves table): ``d_loss`` (L_dom of
the step), ``d_loss_ema`` (its moving average with the scheduler's decay,
started at V*, tracked in every arm so the arms are comparable), ``lr_d``
(the discriminator's learning rate after the step, the one the next step
uses) and ``lr_multiplier`` (1 for a constant lr_d), ``cls_loss`` (L_cls),
``g_loss`` = L_cls − λ · L_dom (the objective F minimises, the other
player's loss) and ``grl_lambda``. The ``source_only`` arm logs NaN for the
discriminator's columns. Every ``eval_every`` steps the row also gets
``val_target_acc`` and ``val_source_acc``.

Result: ``test_metric`` = target test accuracy (``metric_name="target_acc"``,
``metric_mode="max"``) of the final model; ``val_metric`` = the final target
validation accuracy (option ``selection: target_val``, the common but
optimistic protocol: it uses target labels to select) or the final source
validation accuracy (``selection: source_val``, the strict protocol); also
``source_acc`` (source test accuracy), ``val_target_acc``, ``val_source_acc``.

Divergence: ``nonfinite`` (a loss is NaN/inf: stop at once), ``explosion``
(a loss beyond ``loss_limit`` in magnitude: stop at once), ``collapse``
(``d_loss_ema`` stays below ``collapse_fraction`` · log 2 through the last
``collapse_window`` of training: D separates the domains perfectly, F gets
no useful adversarial signal), ``quality`` (the final ``val_metric`` below
``quality_threshold``, default 0.2 = twice the chance accuracy of ten
classes; under ``source_val`` this looks at source accuracy only, so the
strict protocol never reads a target label).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from benchmark.data import Split, sample_batch, to_float
from benchmark.divergence import Divergence, collapse_detected, quality_failed, step_divergence
from benchmark.domains import DOMAIN_PAIRS, load_domain_pair
from benchmark.scheduler import DEFAULT_EMA_DECAY, GapAwareLR
from benchmark.trial import Hyperparameter, ResolvedTrial, TrialContext, TrialOutcome, capture_state, restore_state

__all__ = [
    "HYPERPARAMETERS", "OPTIONS", "DATASETS", "ARMS", "DEFAULT_LOSS", "LOSSES", "DIVERGENCE_DEFAULTS",
    "check", "check_dataset", "train", "grl_lambda", "GradientReversal", "reverse_gradient",
    "FeatureExtractor", "LabelClassifier", "DomainDiscriminator", "accuracy",
]

HYPERPARAMETERS = {
    "lr": Hyperparameter(5e-3, "learning rate of the feature extractor and label classifier"),
    "lr_d": Hyperparameter(1e-3, "domain discriminator (adversary) base learning rate"),
    "beta1": Hyperparameter(0.5, "Adam beta1 of all nets"),
    "beta2": Hyperparameter(0.999, "Adam beta2 of all nets"),
    "weight_decay": Hyperparameter(0.0, "Adam weight decay of the feature extractor and label classifier"),
    "lambda_max": Hyperparameter(1.0, "final weight of the reversed gradient (λ(p) = λ_max·(2/(1+e^(-10p)) - 1))"),
    "steps": Hyperparameter(1500, "training steps (one source and one target batch each)"),
    "batch_size": Hyperparameter(64, "images per domain per batch"),
    "width": Hyperparameter(1.0, "channel multiplier of the feature extractor (32·width, 48·width)"),
    "hidden": Hyperparameter(100, "hidden units of the classifier and discriminator"),
    "log_every": Hyperparameter(10, "steps between logged curve rows"),
    "eval_every": Hyperparameter(500, "steps between validation evaluations (and checkpoints)"),
}
OPTIONS: dict[str, Any] = {
    "selection": "target_val",  # target_val (common, optimistic) or source_val (strict)
}
SELECTIONS = ("target_val", "source_val")
DATASETS = tuple(DOMAIN_PAIRS)  # what a study may name as this task's dataset
ARMS = ("constant", "gap_aware", "source_only")
DEFAULT_LOSS = "domain_bce"
LOSSES = ("domain_bce",)
DIVERGENCE_DEFAULTS: dict[str, Any] = {
    "collapse": True,
    "collapse_fraction": 0.1,
    "collapse_window": 0.2,
    "quality_threshold": 0.2,  # twice chance for ten classes
    "loss_limit": 1e6,
}
METRIC_NAME, METRIC_MODE = "target_acc", "max"
GRL_GAMMA = 10.0  # the steepness of DANN's λ schedule (Ganin et al., 2016)
EVAL_BATCH = 1000


def check(hp: dict[str, Any], options: dict[str, Any]) -> None:
    for name in ("lr", "lr_d", "steps", "batch_size", "width", "hidden", "log_every", "eval_every"):
        if not hp[name] > 0:
            raise ValueError(f"hyperparameter {name} must be > 0, got {hp[name]!r}")
    for name in ("beta1", "beta2"):
        if not 0.0 <= hp[name] < 1.0:
            raise ValueError(f"hyperparameter {name} must lie in [0, 1), got {hp[name]!r}")
    for name in ("weight_decay", "lambda_max"):
        if not hp[name] >= 0:
            raise ValueError(f"hyperparameter {name} must be >= 0, got {hp[name]!r}")
    if options["selection"] not in SELECTIONS:
        raise ValueError(f"option selection must be one of {list(SELECTIONS)}, got {options['selection']!r}")


def check_dataset(name: str) -> None:
    if name not in DOMAIN_PAIRS:
        raise ValueError(
            f"dataset {name!r} is not a domain pair; the dann task takes one of: {', '.join(DOMAIN_PAIRS)}"
        )


# ---------------------------------------------------------------------------
# Gradient reversal
# ---------------------------------------------------------------------------

def grl_lambda(progress: float, lambda_max: float, gamma: float = GRL_GAMMA) -> float:
    """DANN's schedule λ(p) = λ_max · (2 / (1 + exp(−γ p)) − 1): 0 at p = 0, → λ_max as p → 1."""
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must lie in [0, 1], got {progress!r}")
    return float(lambda_max) * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)


class GradientReversal(torch.autograd.Function):
    """Identity forward; the gradient times −λ backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = float(lam)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return -ctx.lam * grad_output, None


def reverse_gradient(x: torch.Tensor, lam: float) -> torch.Tensor:
    return GradientReversal.apply(x, lam)


# ---------------------------------------------------------------------------
# Nets (Ganin et al.'s MNIST architecture, sized from the image shape)
# ---------------------------------------------------------------------------

class FeatureExtractor(nn.Module):
    """2 × [conv → max-pool 2 → ReLU] → flat features.

    5×5 unpadded convs from 20 pixels up (sides 28 → 4, 32 → 5), 3×3 'same' convs below (8 → 2).
    """

    def __init__(self, image_shape: tuple[int, int, int], width: float = 1.0):
        super().__init__()
        channels, height, width_px = image_shape
        if min(height, width_px) < 4:
            raise ValueError(f"images must be at least 4×4 pixels, got {height}×{width_px}")
        kernel, padding = (5, 0) if min(height, width_px) >= 20 else (3, 1)
        c1, c2 = max(4, round(32 * width)), max(4, round(48 * width))
        self.net = nn.Sequential(
            nn.Conv2d(channels, c1, kernel, padding=padding), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(c1, c2, kernel, padding=padding), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            self.out_features = int(self.net(torch.zeros(1, *image_shape)).shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu":
            # PyTorch's CPU max-pool is several times faster on channels-last
            # tensors (the whole step about twice as fast); the numbers mean the same.
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)


class LabelClassifier(nn.Sequential):
    def __init__(self, in_features: int, num_classes: int, hidden: int = 100):
        super().__init__(
            nn.Linear(in_features, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )


class DomainDiscriminator(nn.Module):
    """Features -> one logit (source = 1, target = 0)."""

    def __init__(self, in_features: int, hidden: int = 100):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(1)


@torch.no_grad()
def accuracy(features: nn.Module, classifier: nn.Module, split: Split, device: torch.device) -> float:
    """Share of ``split`` classified correctly (evaluated in batches)."""
    correct = 0
    for start in range(0, len(split), EVAL_BATCH):
        images = to_float(split.images[start:start + EVAL_BATCH]).to(device)
        labels = split.labels[start:start + EVAL_BATCH].to(device)
        correct += int((classifier(features(images)).argmax(1) == labels).sum())
    return correct / len(split)


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------

def train(trial: ResolvedTrial, ctx: TrialContext) -> TrialOutcome:
    spec, hp, loss, device = trial.spec, trial.hp, trial.loss, trial.device
    check_dataset(spec.dataset)
    source, target = load_domain_pair(spec.dataset, root=spec.data_root, download=spec.download)
    adversarial = spec.arm != "source_only"

    torch.manual_seed(spec.seed)
    features = FeatureExtractor(source.image_shape, width=hp["width"]).to(device)
    if device.type == "cpu":
        features = features.to(memory_format=torch.channels_last)  # see FeatureExtractor.forward
    classifier = LabelClassifier(features.out_features, source.num_classes, hidden=hp["hidden"]).to(device)
    discriminator = DomainDiscriminator(features.out_features, hidden=hp["hidden"]).to(device)
    betas = (hp["beta1"], hp["beta2"])
    opt_fc = torch.optim.Adam(
        [*features.parameters(), *classifier.parameters()], lr=hp["lr"], betas=betas, weight_decay=hp["weight_decay"]
    )
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=hp["lr_d"], betas=betas)
    scheduler = (
        GapAwareLR(opt_d, loss.ideal_loss, **spec.scheduler) if adversarial and spec.scheduler is not None else None
    )
    ema_decay = scheduler.ema_decay if scheduler is not None else DEFAULT_EMA_DECAY
    rng = torch.Generator().manual_seed(spec.seed)

    def evaluate(split_name: str) -> dict[str, float]:
        features.eval()
        classifier.eval()
        result = {
            "target_acc": accuracy(features, classifier, target.split(split_name), device),
            "source_acc": accuracy(features, classifier, source.split(split_name), device),
        }
        features.train()
        classifier.train()
        return result

    d_loss_ema, start_step, curves, val = loss.ideal_loss, 1, [], None
    stateful = {
        "features": features, "classifier": classifier, "discriminator": discriminator,
        "opt_fc": opt_fc, "opt_d": opt_d, "scheduler": scheduler,
    }
    state = ctx.load_checkpoint()
    if state is not None:
        progress = restore_state(state, stateful, rng)
        d_loss_ema, start_step = progress["d_loss_ema"], progress["step"] + 1
        curves, val = list(progress["curves"]), progress["val"]

    def outcome(steps_done: int, metrics: dict[str, float], divergence: Divergence | None) -> TrialOutcome:
        return TrialOutcome(steps_done, METRIC_NAME, METRIC_MODE, metrics, curves, divergence)

    for step in range(start_step, hp["steps"] + 1):
        x_s, y_s = sample_batch(source.train, hp["batch_size"], rng)
        x_t, _ = sample_batch(target.train, hp["batch_size"], rng)
        x_s, y_s, x_t = x_s.to(device), y_s.to(device), x_t.to(device)
        lam = grl_lambda((step - 1) / hp["steps"], hp["lambda_max"]) if adversarial else 0.0

        f = features(torch.cat([x_s, x_t]))
        f_s, f_t = f[: len(x_s)], f[len(x_s):]
        cls_loss = F.cross_entropy(classifier(f_s), y_s)
        opt_fc.zero_grad(set_to_none=True)
        if adversarial:
            d_loss = loss.adversary_loss(
                discriminator(reverse_gradient(f_s, lam)), discriminator(reverse_gradient(f_t, lam))
            )
            opt_d.zero_grad(set_to_none=True)
            (cls_loss + d_loss).backward()
            opt_d.step()
            d_value = float(d_loss.detach())
        else:
            cls_loss.backward()
            d_value = math.nan
        opt_fc.step()
        cls_value = float(cls_loss.detach())

        if adversarial:
            if scheduler is not None:
                scheduler.step(d_value)
            if math.isfinite(d_value):
                d_loss_ema = ema_decay * d_loss_ema + (1.0 - ema_decay) * d_value
            losses = {"cls_loss": cls_value, "d_loss": d_value}
        else:
            losses = {"cls_loss": cls_value}
        reason = step_divergence(losses, trial.rules)

        if step % hp["log_every"] == 0 or reason is not None:
            multiplier = scheduler.multiplier if scheduler is not None else 1.0
            if not adversarial:
                multiplier = math.nan
            curves.append(
                {
                    "step": step,
                    "d_loss": d_value,
                    "g_loss": cls_value - lam * d_value if adversarial else cls_value,
                    "d_loss_ema": d_loss_ema if adversarial else math.nan,
                    "lr_d": opt_d.param_groups[0]["lr"] if adversarial else math.nan,
                    "lr_multiplier": multiplier,
                    "cls_loss": cls_value,
                    "grl_lambda": lam,
                }
            )
        if reason is not None:
            return outcome(step, {}, Divergence(reason, step))

        if step % hp["eval_every"] == 0 or step == hp["steps"]:
            val = evaluate("val")
            val_columns = {f"val_{k}": v for k, v in val.items()}
            if curves and curves[-1]["step"] == step:
                curves[-1].update(val_columns)
            else:
                curves.append({"step": step, **val_columns})
            ctx.report_eval(
                step,
                {"step": step, **val_columns},
                capture_state(stateful, rng, step=step, d_loss_ema=d_loss_ema, curves=curves, val=val),
            )

    test = evaluate("test")
    selected = val["target_acc"] if trial.options["selection"] == "target_val" else val["source_acc"]
    metrics = {
        "val_metric": selected,
        "test_metric": test["target_acc"],
        **test,
        **{f"val_{k}": v for k, v in val.items()},
    }

    divergence = None
    logged_ema = [row["d_loss_ema"] for row in curves if "d_loss_ema" in row and math.isfinite(row["d_loss_ema"])]
    if adversarial and collapse_detected(logged_ema, loss.ideal_loss, trial.rules):
        divergence = Divergence("collapse", hp["steps"])
    elif quality_failed(selected, METRIC_MODE, trial.rules):
        divergence = Divergence("quality", hp["steps"])
    return outcome(hp["steps"], metrics, divergence)
