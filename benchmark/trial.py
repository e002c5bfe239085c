"""One trial = one (configuration, arm, seed): resolve its settings, train, return its result row.

A task module (``benchmark/tasks/<name>.py``) declares what it accepts and
trains; this module owns everything common: settings resolution and checks,
the result row of ``trials.parquet`` (the contract in DESIGN.md), the curves
table, checkpoints and provenance. No Ray here — the sweep launcher calls
:func:`run_trial` inside its workers, the CLI calls it in a plain process.
"""

from __future__ import annotations

import datetime as _dt
import functools
import importlib
import math
import os
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd
import torch

from benchmark.divergence import Divergence, DivergenceRules
from benchmark.losses import AdversarialLoss, get_loss
from benchmark.scheduler import default_thresholds

__all__ = [
    "Hyperparameter",
    "TrialSpec",
    "ResolvedTrial",
    "TrialContext",
    "TrialOutcome",
    "TrialResult",
    "TASKS",
    "task_module",
    "capture_state",
    "restore_state",
    "resolve",
    "run_trial",
    "error_row",
    "code_version",
]

TASKS = {"gan": "benchmark.tasks.gan", "dann": "benchmark.tasks.dann"}
CHECKPOINT_FILE = "trial_state.pt"


@dataclass(frozen=True)
class Hyperparameter:
    """A numeric setting of a task: its default (whose type, int or float, is the setting's type)."""

    default: float | int
    help: str

    def cast(self, name: str, value: Any) -> float | int:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"hyperparameter {name} must be a number, got {value!r}") from None
        if isinstance(self.default, int):
            if not number.is_integer():
                raise ValueError(f"hyperparameter {name} must be an integer, got {value!r}")
            return int(number)
        return number


@dataclass
class TrialSpec:
    """Everything that defines one trial. ``hp`` overrides the task's hyperparameter defaults.

    ``scheduler`` holds :class:`~benchmark.scheduler.GapAwareLR` keyword
    arguments; ``None`` means a constant adversary learning rate. It defaults
    to ``{}`` (the paper's defaults) for the arm named ``gap_aware``.
    """

    task: str = "gan"
    dataset: str = "digits"
    arm: str = "gap_aware"
    loss: str | None = None
    hp: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    study: str = "adhoc"
    stage: str = "search"
    config_id: int = 0
    scheduler: dict[str, Any] | None = None
    divergence: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    data_root: str | None = None
    download: bool = False
    device: str = "auto"
    # Torch threads of this trial's process. The small nets of the offline tasks
    # train fastest on one thread, and more threads than free cores slow every
    # trial on the machine down several-fold; raise it for big models on CPU.
    threads: int | None = 1

    def __post_init__(self) -> None:
        if self.scheduler is None and self.arm == "gap_aware":
            self.scheduler = {}

    @property
    def trial_key(self) -> str:
        return f"{self.stage}-{self.config_id}-{self.arm}-{self.seed}"


@dataclass
class ResolvedTrial:
    """A :class:`TrialSpec` with its defaults filled in and checked; what a task's ``train`` receives."""

    spec: TrialSpec
    hp: dict[str, float | int]
    options: dict[str, Any]
    rules: DivergenceRules
    loss: AdversarialLoss
    device: torch.device


@dataclass
class TrialOutcome:
    """What a task's ``train`` returns."""

    steps_done: int
    metric_name: str
    metric_mode: str
    metrics: dict[str, float]  # must hold val_metric and test_metric (NaN when not computed)
    curves: list[dict[str, float]]
    divergence: Divergence | None = None


@dataclass
class TrialResult:
    row: dict[str, Any]
    curves: pd.DataFrame

    @property
    def diverged(self) -> bool:
        return bool(self.row["diverged"])


class TrialContext:
    """Checkpoints and progress reports of a running trial.

    The task calls :meth:`report_eval` at each evaluation with its full
    training state; the state is written atomically to ``checkpoint_dir`` (when
    given) and ``on_eval(step, metrics, checkpoint_dir)`` is called, which is how
    the sweep launcher hands checkpoints to Ray Tune. :meth:`load_checkpoint`
    returns that state when a retried trial starts again.
    """

    def __init__(
        self,
        checkpoint_dir: str | os.PathLike | None = None,
        on_eval: Callable[[int, dict[str, float], Path | None], None] | None = None,
    ) -> None:
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.on_eval = on_eval

    def load_checkpoint(self) -> dict[str, Any] | None:
        if self.checkpoint_dir is None:
            return None
        path = self.checkpoint_dir / CHECKPOINT_FILE
        if not path.exists():
            return None
        # Written by save below: tensors, numbers, strings and containers only.
        return torch.load(path, map_location="cpu", weights_only=True)

    def report_eval(self, step: int, metrics: Mapping[str, float], state: Mapping[str, Any]) -> None:
        if self.checkpoint_dir is not None:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.checkpoint_dir, suffix=".tmp")
            os.close(fd)
            torch.save(dict(state), tmp)
            os.replace(tmp, self.checkpoint_dir / CHECKPOINT_FILE)
        if self.on_eval is not None:
            self.on_eval(step, dict(metrics), self.checkpoint_dir)


def capture_state(stateful: Mapping[str, Any], rng: torch.Generator, **progress: Any) -> dict[str, Any]:
    """A task's full training state for a checkpoint: every object's ``state_dict()``
    (``None`` entries, e.g. a missing scheduler, skipped), the trial's generator and
    torch's global RNG state, and the task's progress values (step, curves, ...)."""
    state = {name: obj.state_dict() for name, obj in stateful.items() if obj is not None}
    state.update(rng=rng.get_state(), torch_rng=torch.get_rng_state(), progress=progress)
    return state


def restore_state(state: Mapping[str, Any], stateful: Mapping[str, Any], rng: torch.Generator) -> dict[str, Any]:
    """Load a state written by :func:`capture_state` into the same objects; returns the progress values."""
    for name, obj in stateful.items():
        if obj is not None:
            obj.load_state_dict(state[name])
    rng.set_state(state["rng"])
    torch.set_rng_state(state["torch_rng"])
    return dict(state["progress"])


def task_module(name: str):
    """The task module registered as ``name``; unknown names raise a ``ValueError`` listing the known ones."""
    try:
        return importlib.import_module(TASKS[name])
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}") from None


def resolve(spec: TrialSpec) -> ResolvedTrial:
    """Fill in the task's defaults and check every setting; raises ``ValueError`` naming the bad field."""
    task = task_module(spec.task)
    unknown = sorted(set(spec.hp) - set(task.HYPERPARAMETERS))
    if unknown:
        raise ValueError(
            f"unknown hyperparameter(s) {unknown} for task {spec.task!r}; known: {sorted(task.HYPERPARAMETERS)}"
        )
    hp = {name: h.cast(name, spec.hp.get(name, h.default)) for name, h in task.HYPERPARAMETERS.items()}
    unknown = sorted(set(spec.options) - set(task.OPTIONS))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for task {spec.task!r}; known: {sorted(task.OPTIONS)}")
    options = {**task.OPTIONS, **spec.options}
    if spec.arm not in task.ARMS:
        raise ValueError(f"unknown arm {spec.arm!r} for task {spec.task!r}; known arms: {list(task.ARMS)}")
    if spec.stage not in ("search", "confirm"):
        raise ValueError(f"stage must be 'search' or 'confirm', got {spec.stage!r}")
    rules = DivergenceRules.from_mapping({**task.DIVERGENCE_DEFAULTS, **spec.divergence})
    loss = get_loss(spec.loss or task.DEFAULT_LOSS)
    if loss.name not in task.LOSSES:
        raise ValueError(f"loss {loss.name!r} does not fit task {spec.task!r}; use one of {list(task.LOSSES)}")
    if spec.arm == "constant" and spec.scheduler is not None:
        raise ValueError("arm 'constant' runs without a scheduler; drop the scheduler settings or use arm 'gap_aware'")
    if spec.scheduler is not None:
        allowed = {"ema_decay", "h_min", "f_max", "x_min", "x_max"}
        bad = sorted(set(spec.scheduler) - allowed)
        if bad:
            raise ValueError(f"unknown scheduler setting(s) {bad}; known: {sorted(allowed)}")
        default_thresholds(loss.ideal_loss, spec.scheduler.get("x_min"), spec.scheduler.get("x_max"))
    task.check(hp, options)
    check_dataset = getattr(task, "check_dataset", None)
    if check_dataset is not None:
        check_dataset(spec.dataset)
    return ResolvedTrial(spec=spec, hp=hp, options=options, rules=rules, loss=loss, device=_device(spec.device))


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Git commit of the code (``+dirty`` with local changes), else the package version."""
    here = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
        if commit.returncode == 0:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=here, capture_output=True, text=True, timeout=5,
            )
            return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return "v" + version("gapaware-bench")
    except PackageNotFoundError:
        return "unknown"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _identity_columns(spec: TrialSpec, loss_name: str) -> dict[str, Any]:
    return {
        "study": spec.study,
        "task": spec.task,
        "dataset": spec.dataset,
        "loss": loss_name,
        "arm": spec.arm,
        "stage": spec.stage,
        "config_id": int(spec.config_id),
        "seed": int(spec.seed),
        "trial_key": spec.trial_key,
    }


def run_trial(
    spec: TrialSpec,
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    on_eval: Callable[[int, dict[str, float], Path | None], None] | None = None,
) -> TrialResult:
    """Run one trial to its end and return its row and curves.

    A run that diverges returns normally with ``status='diverged'``; invalid
    settings raise ``ValueError`` before any training; anything else raised is
    a bug or an infrastructure fault (the sweep launcher retries it).
    """
    resolved = resolve(spec)
    if spec.threads is not None:
        torch.set_num_threads(int(spec.threads))
    started_at, started = _now(), time.perf_counter()
    outcome: TrialOutcome = task_module(spec.task).train(resolved, TrialContext(checkpoint_dir, on_eval))
    wall = time.perf_counter() - started

    row = _identity_columns(spec, resolved.loss.name)
    row.update({f"hp_{name}": value for name, value in resolved.hp.items()})
    diverged = outcome.divergence is not None
    row.update(
        {
            "status": "diverged" if diverged else "ok",
            "diverged": diverged,
            "divergence_reason": outcome.divergence.reason if diverged else None,
            "divergence_step": int(outcome.divergence.step) if diverged else None,
            "metric_name": outcome.metric_name,
            "metric_mode": outcome.metric_mode,
            "ideal_loss": float(resolved.loss.ideal_loss),
            "scheduler": "gap_aware" if spec.scheduler is not None else "constant",
        }
    )
    metrics = {"val_metric": math.nan, "test_metric": math.nan, **outcome.metrics}
    row.update({name: float(value) for name, value in metrics.items()})
    row.update(
        {
            "steps_done": int(outcome.steps_done),
            "wall_time_s": float(wall),
            "code_version": code_version(),
            "started_at": started_at,
            "finished_at": _now(),
            "host": socket.gethostname(),
        }
    )
    curves = pd.DataFrame(outcome.curves)
    curves.insert(0, "trial_key", spec.trial_key)
    return TrialResult(row=row, curves=curves)


def error_row(spec: TrialSpec, error: BaseException | str, *, wall_time_s: float = math.nan) -> dict[str, Any]:
    """The row recorded for a trial that failed with a bug or infrastructure fault (after retries)."""
    row = _identity_columns(spec, spec.loss or "")
    row.update({f"hp_{name}": value for name, value in spec.hp.items()})
    row.update(
        {
            "status": "error",
            "diverged": False,
            "divergence_reason": None,
            "divergence_step": None,
            "error": str(error)[:2000],
            "val_metric": math.nan,
            "test_metric": math.nan,
            "steps_done": 0,
            "wall_time_s": float(wall_time_s),
            "code_version": code_version(),
            "started_at": None,
            "finished_at": _now(),
            "host": socket.gethostname(),
        }
    )
    return row
