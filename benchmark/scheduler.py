"""The gap-aware learning-rate scheduler of Hazimeh & Ponomareva (AISTATS 2023, arXiv 2302.00089).

The scheduler keeps the adversary's loss near the loss of an *ideal* adversary,
a constant V* known in advance (log 4 for the standard GAN discriminator with
summed real + fake BCE). With V the exponential moving average of the
adversary's loss (started at V*) and x = |V - V*|:

    V > V*  (adversary losing):  multiplier = clip(f_max ** (x / x_max), 1, f_max)
    V <= V* (adversary winning): multiplier = clip(h_min ** (x / x_min), h_min, 1)

and the adversary's learning rate is ``base_lr * multiplier``. Defaults:
``h_min = 0.1``, ``f_max = 2.0``, ``x_min = x_max = 0.1 * |V*|``. Where V* = 0
(Wasserstein critics), ``x_min`` and ``x_max`` must be given.

Use it like any PyTorch scheduler, but feed it the adversary's loss::

    sched = GapAwareLR(d_optimizer, ideal_loss=math.log(4))
    for batch in data:
        d_loss = ...; d_loss.backward(); d_optimizer.step()
        sched.step(d_loss)
"""

from __future__ import annotations

import math
import numbers
import numpy as np
import torch
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["GapAwareLR", "gap_multiplier", "default_thresholds"]

DEFAULT_EMA_DECAY = 0.95
DEFAULT_H_MIN = 0.1
DEFAULT_F_MAX = 2.0
DEFAULT_THRESHOLD_FRACTION = 0.1


def _check_factor_bounds(h_min: float, f_max: float) -> None:
    if not 0.0 < h_min <= 1.0:
        raise ValueError(f"h_min must lie in (0, 1], got {h_min!r}")
    if not f_max >= 1.0:
        raise ValueError(f"f_max must be >= 1, got {f_max!r}")


def _check_threshold(name: str, value: float) -> None:
    if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def default_thresholds(
    ideal_loss: float, x_min: float | None = None, x_max: float | None = None
) -> tuple[float, float]:
    """Resolve ``(x_min, x_max)``: a missing one defaults to ``0.1 * |ideal_loss|``.

    Raises ``ValueError`` when a default is needed but ``ideal_loss`` is 0 (a
    relative threshold of zero would make every deviation saturate the factor).
    """
    resolved = []
    for name, value in (("x_min", x_min), ("x_max", x_max)):
        if value is None:
            if ideal_loss == 0:
                raise ValueError(
                    f"{name} must be given explicitly when ideal_loss is 0 "
                    "(e.g. a Wasserstein critic): the default 0.1 * ideal_loss would be 0"
                )
            value = DEFAULT_THRESHOLD_FRACTION * abs(ideal_loss)
        _check_threshold(name, value)
        resolved.append(float(value))
    return resolved[0], resolved[1]


def gap_multiplier(loss, ideal_loss, x_min, x_max, h_min=DEFAULT_H_MIN, f_max=DEFAULT_F_MAX):
    """The paper's learning-rate multiplier for a (smoothed) adversary loss.

    Pure and vectorised: ``loss`` may be a float, a numpy array or a tensor;
    the result has the same kind (a float for a float).
    """
    _check_factor_bounds(h_min, f_max)
    _check_threshold("x_min", x_min)
    _check_threshold("x_max", x_max)
    if isinstance(loss, torch.Tensor):
        xp, clip = torch, torch.clamp
        loss_arr = loss
    else:
        xp, clip = np, np.clip
        loss_arr = np.asarray(loss, dtype=float)
    gap = loss_arr - ideal_loss
    x = xp.abs(gap)
    # Exponents past 1 are clipped anyway; capping them first avoids overflow for huge losses.
    above = clip(f_max ** clip(x / x_max, 0.0, 1.0), 1.0, f_max)
    below = clip(h_min ** clip(x / x_min, 0.0, 1.0), h_min, 1.0)
    result = xp.where(gap > 0, above, below)
    if isinstance(loss, numbers.Real):
        return float(result)
    return result


class GapAwareLR(LRScheduler):
    """Scale the adversary's learning rate by the gap-aware multiplier.

    Works with any optimizer and any number of parameter groups: each group's
    base learning rate is multiplied by the same factor. ``step(loss)`` takes
    the adversary's loss of the current step (a float or a 0-d tensor); a call
    without a loss re-applies the current multiplier. A non-finite loss leaves
    the moving average untouched (the divergence check of the training loop
    decides what happens to the run).

    ``state_dict()`` carries the moving average, so a resumed run continues
    with identical learning rates.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        ideal_loss: float,
        *,
        ema_decay: float = DEFAULT_EMA_DECAY,
        h_min: float = DEFAULT_H_MIN,
        f_max: float = DEFAULT_F_MAX,
        x_min: float | None = None,
        x_max: float | None = None,
        last_epoch: int = -1,
    ) -> None:
        if not (isinstance(ideal_loss, numbers.Real) and math.isfinite(ideal_loss)):
            raise ValueError(f"ideal_loss must be a finite number, got {ideal_loss!r}")
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1), got {ema_decay!r}")
        _check_factor_bounds(h_min, f_max)
        self.ideal_loss = float(ideal_loss)
        self.ema_decay = float(ema_decay)
        self.h_min = float(h_min)
        self.f_max = float(f_max)
        self.x_min, self.x_max = default_thresholds(self.ideal_loss, x_min, x_max)
        self.smoothed_loss = self.ideal_loss
        self.multiplier = 1.0
        super().__init__(optimizer, last_epoch)

    def step(self, loss: float | torch.Tensor | None = None) -> None:  # type: ignore[override]
        if loss is not None:
            value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
            if math.isfinite(value):
                self.smoothed_loss = self.ema_decay * self.smoothed_loss + (1.0 - self.ema_decay) * value
                self.multiplier = gap_multiplier(
                    self.smoothed_loss, self.ideal_loss, self.x_min, self.x_max, self.h_min, self.f_max
                )
        super().step()

    def get_lr(self) -> list[float]:
        return [base_lr * self.multiplier for base_lr in self.base_lrs]
