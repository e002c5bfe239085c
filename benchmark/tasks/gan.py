"""The GAN trial: a DCGAN trained with or without the gap-aware scheduler on the discriminator.

Per generator step, ``n_disc`` discriminator steps minimise the loss's
adversary objective L_D (e.g. BCE(D(x), 1) + BCE(D(G(z)), 0), V* = log 4) with
Adam(lr_d); the ``gap_aware`` arm multiplies lr_d by
:class:`~benchmark.scheduler.GapAwareLR`'s factor, fed with L_D (without any
gradient penalty). The generator minimises the loss's generator objective
with Adam(lr_g). Quality is FID/KID from torch-fidelity against the real
validation split (selection, ``val_metric``) and test split (``test_metric``).

Every arm tracks the same moving average of L_D (``d_loss_ema``), so the
curves of the two arms are comparable.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from benchmark.data import available_datasets, load_dataset, sample_batch
from benchmark.divergence import Divergence, collapse_detected, quality_failed, step_divergence
from benchmark.losses import GAN_LOSSES
from benchmark.metrics import FidelityEvaluator
from benchmark.models import Discriminator, Generator
from benchmark.scheduler import DEFAULT_EMA_DECAY, GapAwareLR
from benchmark.trial import Hyperparameter, ResolvedTrial, TrialContext, TrialOutcome, capture_state, restore_state

HYPERPARAMETERS = {
    "lr_d": Hyperparameter(2e-4, "discriminator (adversary) base learning rate"),
    "lr_g": Hyperparameter(2e-4, "generator learning rate"),
    "beta1": Hyperparameter(0.5, "Adam beta1 of both players"),
    "beta2": Hyperparameter(0.999, "Adam beta2 of both players"),
    "steps": Hyperparameter(1500, "generator steps"),
    "batch_size": Hyperparameter(64, "images per batch"),
    "n_disc": Hyperparameter(1, "discriminator steps per generator step"),
    "z_dim": Hyperparameter(32, "latent dimension"),
    "width": Hyperparameter(0.5, "channel multiplier of both nets (64·width at the finest layer)"),
    "log_every": Hyperparameter(10, "steps between logged curve rows"),
    "eval_every": Hyperparameter(500, "steps between validation FID/KID evaluations (and checkpoints)"),
    "eval_samples": Hyperparameter(1000, "generated images per FID/KID evaluation"),
}
OPTIONS: dict[str, Any] = {
    "feature_extractor": "auto",  # auto: the bundled digits CNN for digits, Inception for RGB data
    "inception_weights": None,  # path to Inception weights for machines without internet
}
ARMS = ("constant", "gap_aware")
DEFAULT_LOSS = "nonsaturating"
LOSSES = GAN_LOSSES
DIVERGENCE_DEFAULTS: dict[str, Any] = {
    "collapse": True,
    "collapse_fraction": 0.1,
    "collapse_window": 0.2,
    "quality_threshold": None,
    "loss_limit": 1e6,
}
METRIC_NAME, METRIC_MODE = "fid", "min"


def check(hp: dict[str, Any], options: dict[str, Any]) -> None:
    for name in ("lr_d", "lr_g", "steps", "batch_size", "n_disc", "z_dim", "width", "log_every", "eval_every"):
        if not hp[name] > 0:
            raise ValueError(f"hyperparameter {name} must be > 0, got {hp[name]!r}")
    for name in ("beta1", "beta2"):
        if not 0.0 <= hp[name] < 1.0:
            raise ValueError(f"hyperparameter {name} must lie in [0, 1), got {hp[name]!r}")
    if hp["eval_samples"] < 2:
        raise ValueError(f"hyperparameter eval_samples must be >= 2, got {hp['eval_samples']!r}")


def check_dataset(name: str) -> None:
    known = available_datasets()
    if name not in known:
        raise ValueError(f"unknown dataset {name!r} for task 'gan'; known datasets: {', '.join(sorted(known))}")


def train(trial: ResolvedTrial, ctx: TrialContext) -> TrialOutcome:
    spec, hp, loss, device = trial.spec, trial.hp, trial.loss, trial.device
    data = load_dataset(spec.dataset, root=spec.data_root, download=spec.download)
    evaluator = FidelityEvaluator(
        data,
        extractor=trial.options["feature_extractor"],
        weights_path=trial.options["inception_weights"],
        device=device,
    )

    torch.manual_seed(spec.seed)
    generator = Generator(data.image_shape, z_dim=hp["z_dim"], width=hp["width"]).to(device)
    discriminator = Discriminator(
        data.image_shape, width=hp["width"], batchnorm=loss.name != "wasserstein_gp"
    ).to(device)
    betas = (hp["beta1"], hp["beta2"])
    opt_g = torch.optim.Adam(generator.parameters(), lr=hp["lr_g"], betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=hp["lr_d"], betas=betas)
    scheduler = (
        GapAwareLR(opt_d, loss.ideal_loss, **spec.scheduler) if spec.scheduler is not None else None
    )
    ema_decay = scheduler.ema_decay if scheduler is not None else DEFAULT_EMA_DECAY
    rng = torch.Generator().manual_seed(spec.seed)
    eval_noise = torch.randn(hp["eval_samples"], hp["z_dim"], generator=torch.Generator().manual_seed(spec.seed + 7919))

    def generate() -> torch.Tensor:
        generator.eval()
        with torch.no_grad():
            images = torch.cat([generator(z.to(device)) for z in eval_noise.split(500)])
        generator.train()
        return images

    stateful = {
        "generator": generator, "discriminator": discriminator, "opt_g": opt_g, "opt_d": opt_d, "scheduler": scheduler
    }
    d_loss_ema, start_step, curves, val = loss.ideal_loss, 1, [], None
    state = ctx.load_checkpoint()
    if state is not None:
        progress = restore_state(state, stateful, rng)
        d_loss_ema, start_step = progress["d_loss_ema"], progress["step"] + 1
        curves, val = list(progress["curves"]), progress["val"]

    def outcome(steps_done: int, metrics: dict[str, float], divergence: Divergence | None) -> TrialOutcome:
        return TrialOutcome(steps_done, METRIC_NAME, METRIC_MODE, metrics, curves, divergence)

    for step in range(start_step, hp["steps"] + 1):
        for _ in range(hp["n_disc"]):
            real, _ = sample_batch(data.train, hp["batch_size"], rng)
            real = real.to(device)
            z = torch.randn(hp["batch_size"], hp["z_dim"], generator=rng).to(device)
            with torch.no_grad():
                fake = generator(z)
            d_loss = loss.adversary_loss(discriminator(real), discriminator(fake))
            opt_d.zero_grad(set_to_none=True)
            (d_loss + loss.penalty(discriminator, real, fake)).backward()
            opt_d.step()
            d_value = float(d_loss.detach())
            if scheduler is not None:
                scheduler.step(d_value)
            if math.isfinite(d_value):
                d_loss_ema = ema_decay * d_loss_ema + (1.0 - ema_decay) * d_value

        z = torch.randn(hp["batch_size"], hp["z_dim"], generator=rng).to(device)
        g_loss = loss.generator_loss(discriminator(generator(z)))
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        g_value = float(g_loss.detach())

        reason = step_divergence({"d_loss": d_value, "g_loss": g_value}, trial.rules)
        if step % hp["log_every"] == 0 or reason is not None:
            curves.append(
                {
                    "step": step,
                    "d_loss": d_value,
                    "g_loss": g_value,
                    "d_loss_ema": d_loss_ema,
                    "lr_d": opt_d.param_groups[0]["lr"],
                    "lr_multiplier": scheduler.multiplier if scheduler is not None else 1.0,
                }
            )
        if reason is not None:
            return outcome(step, {}, Divergence(reason, step))

        if step % hp["eval_every"] == 0 or step == hp["steps"]:
            val = evaluator.evaluate(generate(), "val")
            if curves and curves[-1]["step"] == step:
                curves[-1].update({f"val_{k}": v for k, v in val.items()})
            else:
                curves.append({"step": step, **{f"val_{k}": v for k, v in val.items()}})
            ctx.report_eval(
                step,
                {"step": step, **{f"val_{k}": v for k, v in val.items()}},
                capture_state(stateful, rng, step=step, d_loss_ema=d_loss_ema, curves=curves, val=val),
            )

    # The last evaluation (restored with a checkpoint taken at the final step) is the final validation score.
    test = evaluator.evaluate(generate(), "test")
    metrics = {"val_metric": val["fid"], "test_metric": test["fid"], **test, **{f"val_{k}": v for k, v in val.items()}}

    divergence = None
    logged_ema = [row["d_loss_ema"] for row in curves if "d_loss_ema" in row]
    if collapse_detected(logged_ema, loss.ideal_loss, trial.rules):
        divergence = Divergence("collapse", hp["steps"])
    elif quality_failed(val["fid"], METRIC_MODE, trial.rules):
        divergence = Divergence("quality", hp["steps"])
    return outcome(hp["steps"], metrics, divergence)
