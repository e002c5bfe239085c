"""What a person watching a study sees: one line per finished trial, a heartbeat, and a summary."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Counts of one stage of a study and the lines that report them.

    ``total`` counts every trial of the stage, ``already`` those finished by
    an earlier run; the ETA extrapolates from the trials finished in this run.
    """

    def __init__(self, stage: str, total: int, already: int, *, stream: TextIO | None = None, clock=time.monotonic) -> None:
        self.stage = stage
        self.total = total
        self.done = already
        self.already = already
        self.diverged = 0
        self.errors = 0
        self.running = 0
        self.stream = stream or sys.stdout
        self._clock = clock
        self.started = clock()
        self._last_line = self.started
        # trial_key -> [started, finished] on this process's monotonic clock (read by the benchmarks)
        self.timeline: dict[str, list[float]] = {}

    @property
    def elapsed(self) -> float:
        return self._clock() - self.started

    @property
    def eta(self) -> float:
        finished_here = self.done - self.already
        if finished_here <= 0:
            return math.nan
        return self.elapsed / finished_here * (self.total - self.done)

    def _status(self) -> str:
        width = len(str(self.total))
        percent = 100.0 * self.done / self.total if self.total else 100.0
        return (
            f"{self.stage} {self.done:>{width}}/{self.total} ({percent:3.0f}%) | diverged {self.diverged}"
            + (f" | errors {self.errors}" if self.errors else "")
            + f" | elapsed {format_duration(self.elapsed)} | ETA {format_duration(self.eta)}"
        )

    def _print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)
        self._last_line = self._clock()

    def trial_started(self, trial_key: str) -> None:
        self.timeline[trial_key] = [self._clock(), math.nan]

    def trial_finished(self, row: dict[str, Any], *, resumed: bool = False) -> None:
        self.done += 1
        if row.get("trial_key") in self.timeline:
            self.timeline[row["trial_key"]][1] = self._clock()
        status = row.get("status", "?")
        if status == "diverged":
            self.diverged += 1
            detail = f"diverged ({row.get('divergence_reason')} at step {row.get('divergence_step')})"
        elif status == "error":
            self.errors += 1
            message = str(row.get("error") or "").strip()
            detail = "error: " + message.splitlines()[0][:120] if message else "error"
        else:
            value = row.get("val_metric")
            metric = row.get("metric_name") or "val_metric"
            detail = f"ok, val {metric} {value:.4g}" if isinstance(value, float) and math.isfinite(value) else "ok"
        seconds = row.get("wall_time_s")
        took = f" in {format_duration(seconds)}" if isinstance(seconds, (int, float)) and math.isfinite(seconds) else ""
        note = " (resumed from a checkpoint)" if resumed else ""
        self._print(f"  [{self._status()}]  {row.get('trial_key')}: {detail}{took}{note}")

    def heartbeat(self, every: float = 60.0) -> None:
        """A status line when nothing was printed for ``every`` seconds."""
        if self._clock() - self._last_line >= every:
            self._print(f"  {self._status()} | {self.running} running")
