"""One trial of an adversarial net, with or without the gap-aware scheduler.

No Ray here: a trial runs in a plain Python process (``python -m benchmark trial ...``).
"""
from benchmark.scheduler import GapAwareLR, gap_multiplier

__all__ = ["GapAwareLR", "gap_multiplier"]
