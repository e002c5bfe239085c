"""Divergence rules shared by every task: a diverged run is data, not a crash.

- ``nonfinite``: any loss is NaN or ±inf — the trial stops at that step.
- ``explosion``: any loss's magnitude exceeds ``loss_limit`` (far beyond any
  loss of a working run; the next steps would overflow) — the trial stops too.
- ``collapse``: the adversary's smoothed loss stays below ``collapse_fraction · V*``
  through the last ``collapse_window`` share of training (the adversary has won
  and the other player gets no useful signal).
- ``quality``: the final validation metric is worse than ``quality_threshold``
  (direction-aware; ``None`` switches the rule off).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence

__all__ = ["DivergenceRules", "Divergence", "first_nonfinite", "first_exploded", "step_divergence", "collapse_detected", "quality_failed"]


@dataclass(frozen=True)
class DivergenceRules:
    collapse: bool = True
    collapse_fraction: float = 0.1
    collapse_window: float = 0.2
    quality_threshold: float | None = None
    loss_limit: float = 1e6

    def __post_init__(self) -> None:
        if not self.loss_limit > 0:
            raise ValueError(f"divergence.loss_limit must be > 0, got {self.loss_limit!r}")
        if not 0.0 < self.collapse_fraction < 1.0:
            raise ValueError(f"divergence.collapse_fraction must lie in (0, 1), got {self.collapse_fraction!r}")
        if not 0.0 < self.collapse_window <= 1.0:
            raise ValueError(f"divergence.collapse_window must lie in (0, 1], got {self.collapse_window!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> "DivergenceRules":
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown divergence rule(s) {unknown}; known: {sorted(known)}")
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Divergence:
    reason: str  # "nonfinite" | "explosion" | "collapse" | "quality"
    step: int


def first_nonfinite(losses: Mapping[str, float]) -> str | None:
    """Name of the first non-finite loss in ``losses`` (or ``None``)."""
    for name, value in losses.items():
        if not math.isfinite(value):
            return name
    return None


def first_exploded(losses: Mapping[str, float], limit: float) -> str | None:
    """Name of the first loss whose magnitude exceeds ``limit`` (or ``None``)."""
    for name, value in losses.items():
        if abs(value) > limit:
            return name
    return None


def step_divergence(losses: Mapping[str, float], rules: DivergenceRules) -> str | None:
    """The reason this step's losses end the trial at once (``nonfinite``, ``explosion``) or ``None``."""
    if first_nonfinite(losses) is not None:
        return "nonfinite"
    if first_exploded(losses, rules.loss_limit) is not None:
        return "explosion"
    return None


def collapse_detected(
    smoothed_losses: Sequence[float], ideal_loss: float, rules: DivergenceRules
) -> bool:
    """Whether the adversary's smoothed loss sat below ``fraction · V*`` through the whole final window.

    ``smoothed_losses`` are the logged values over the whole run, in order.
    A loss with V* <= 0 (Wasserstein) has no relative collapse level: never collapsed.
    """
    if not rules.collapse or ideal_loss <= 0 or not smoothed_losses:
        return False
    window = max(1, math.ceil(rules.collapse_window * len(smoothed_losses)))
    level = rules.collapse_fraction * ideal_loss
    return all(value < level for value in smoothed_losses[-window:])


def quality_failed(val_metric: float, mode: str, rules: DivergenceRules) -> bool:
    """Whether the final validation metric is worse than the threshold (NaN counts as worse)."""
    if rules.quality_threshold is None:
        return False
    if not math.isfinite(val_metric):
        return True
    if mode == "min":
        return val_metric > rules.quality_threshold
    if mode == "max":
        return val_metric < rules.quality_threshold
    raise ValueError(f"metric mode must be 'min' or 'max', got {mode!r}")
