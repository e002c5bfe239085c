"""The study file: its schema, and the checks that run before anything starts.

A study file is YAML (read with ``yaml.safe_load``) validated in three passes,
each failing with :class:`StudyError`, which names the field:

1. the shape — pydantic models with ``extra="forbid"``, so a misspelt key is
   an error, not a silently ignored setting;
2. the names — task, dataset, loss, arms, hyperparameters, options and
   divergence rules are looked up in the benchmark's registries (so a task
   added to :data:`benchmark.trial.TASKS` is accepted without touching this file);
3. the trials — every sampled configuration is resolved under every arm with
   :func:`benchmark.trial.resolve`, which checks value ranges the task knows.

Example (``sweeps/studies/quick.yaml`` is a complete one)::

    name: quick
    task: gan
    dataset: digits
    arms: [constant, gap_aware]          # or [{name: gap_aware, scheduler: {h_min: 0.1}}]
    n_configs: 12                        # random draws (× every grid point)
    search_space:
      lr_d: {type: loguniform, low: 1.0e-5, high: 1.0e-1}
      beta1: {type: choice, values: [0.0, 0.5]}
      n_disc: {type: grid, values: [1, 2]}
    fixed: {steps: 1200, eval_every: 400}
    confirm: {top_k: 1, n_seeds: 3}
    results: results                     # or s3://bucket/prefix, gs://bucket/prefix
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sweeps.storage import check_location

__all__ = [
    "StudyError",
    "LogUniform",
    "Uniform",
    "Choice",
    "Grid",
    "SchedulerSettings",
    "Arm",
    "Resources",
    "Confirm",
    "Study",
    "load_study",
    "parse_study",
    "study_hash",
    "EXECUTION_FIELDS",
]


class StudyError(ValueError):
    """An invalid study: a list of (field path, message); ``str()`` is the readable report."""

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"invalid study file {source}" if source else "invalid study"
        lines = [f"{where}:"] + [f"  {field}: {message}" if field else f"  {message}" for field, message in problems]
        super().__init__("\n".join(lines))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- search space -----------------------------------------------------------------------------------


class LogUniform(_Strict):
    """exp(U(log low, log high)): for learning rates and other scale parameters."""

    type: Literal["loguniform"]
    low: float = Field(gt=0, allow_inf_nan=False)
    high: float = Field(gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class Uniform(_Strict):
    type: Literal["uniform"]
    low: float = Field(allow_inf_nan=False)
    high: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class Choice(_Strict):
    """One of ``values``, drawn uniformly for each configuration."""

    type: Literal["choice"]
    values: list[Union[int, float]] = Field(min_length=1)


class Grid(_Strict):
    """Every one of ``values``: the configurations are the product of all grids × ``n_configs`` draws."""

    type: Literal["grid"]
    values: list[Union[int, float]] = Field(min_length=1)

    @field_validator("values")
    @classmethod
    def _distinct(cls, values):
        if len(set(values)) != len(values):
            raise ValueError(f"grid values must be distinct, got {values}")
        return values


Parameter = Annotated[Union[LogUniform, Uniform, Choice, Grid], Field(discriminator="type")]


# -- arms, resources, stages ------------------------------------------------------------------------


class SchedulerSettings(_Strict):
    """Keyword arguments of :class:`benchmark.scheduler.GapAwareLR`; omitted ones take the paper's defaults."""

    ema_decay: float | None = Field(default=None, gt=0, lt=1)
    h_min: float | None = Field(default=None, gt=0, le=1)
    f_max: float | None = Field(default=None, ge=1)
    x_min: float | None = Field(default=None, gt=0)
    x_max: float | None = Field(default=None, gt=0)

    def kwargs(self) -> dict[str, float]:
        return self.model_dump(exclude_none=True)


class Arm(_Strict):
    """One treatment of every configuration: its name (one of the task's arms) and scheduler settings.

    ``scheduler: null`` (or omitted) on the ``gap_aware`` arm means the paper's defaults.
    """

    name: str = Field(min_length=1)
    scheduler: SchedulerSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value):
        # "arms: [constant, gap_aware]" is the common case; expand it.
        return {"name": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _constant_has_no_scheduler(self):
        if self.name == "constant" and self.scheduler is not None:
            raise ValueError("the constant arm keeps its learning rate fixed; remove its scheduler settings")
        return self

    def scheduler_kwargs(self) -> dict[str, float] | None:
        return self.scheduler.kwargs() if self.scheduler is not None else None


class Resources(_Strict):
    """What one trial reserves from Ray: CPUs (also its torch threads) and a GPU share."""

    cpus: float = Field(default=1.0, gt=0)
    gpus: float = Field(default=0.0, description="0 for CPU-only, else a fraction of one GPU in (0, 1]")

    @field_validator("gpus")
    @classmethod
    def _gpu_fraction(cls, gpus: float) -> float:
        if not (gpus == 0 or 0 < gpus <= 1):
            raise ValueError(f"gpus must be 0 (CPU only) or a fraction of one GPU in (0, 1], got {gpus}")
        return gpus

    @property
    def threads(self) -> int:
        return max(1, int(math.floor(self.cpus)))


class Confirm(_Strict):
    """Second stage: the ``top_k`` best configurations of each arm (by validation metric) rerun with ``n_seeds`` new seeds."""

    top_k: int = Field(default=1, ge=1)
    n_seeds: int = Field(default=3, ge=1)


# -- the study --------------------------------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# Fields that change how a study runs, not what it computes: editing them
# between a run and its resume is allowed (e.g. more concurrency on a bigger machine).
EXECUTION_FIELDS = frozenset({"resources", "max_concurrent", "max_failures", "results", "description"})


class Study(_Strict):
    name: str = Field(description="directory name of the results: <results>/<name>/")
    description: str = ""
    task: str
    dataset: str
    loss: str | None = Field(default=None, description="null: the task's default loss")
    seed: int = Field(default=0, ge=0, description="draws the configurations and the trial seeds")
    n_configs: int = Field(ge=1, description="random draws; each is combined with every grid point")
    seeds_per_config: int = Field(default=1, ge=1)
    arms: list[Arm] = Field(min_length=1)
    search_space: dict[str, Parameter] = Field(default_factory=dict)
    fixed: dict[str, Union[int, float]] = Field(default_factory=dict)
    divergence: dict[str, Union[bool, int, float, None]] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    resources: Resources = Field(default_factory=Resources)
    max_concurrent: int | None = Field(default=None, ge=1)
    max_failures: int = Field(default=2, ge=0, description="Ray retries of a trial that crashes (not one that diverges)")
    confirm: Confirm | None = None
    results: str = Field(default="results", description="a directory, s3://bucket/prefix or gs://bucket/prefix")
    data_root: str | None = None
    download: bool = False

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f"name must be letters, digits, '_', '-' or '.', starting with a letter or digit; got {name!r}")
        return name

    @field_validator("results")
    @classmethod
    def _location(cls, results: str) -> str:
        return check_location(results)

    @field_validator("arms")
    @classmethod
    def _distinct_arms(cls, arms: list[Arm]) -> list[Arm]:
        names = [arm.name for arm in arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be distinct, got {names}")
        return arms

    @property
    def grid_size(self) -> int:
        return math.prod(len(p.values) for p in self.search_space.values() if isinstance(p, Grid))

    @property
    def total_configs(self) -> int:
        return self.n_configs * self.grid_size

    @property
    def arm_names(self) -> list[str]:
        return [arm.name for arm in self.arms]

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(name)


def study_hash(study: Study) -> str:
    """Hash of everything that decides what the trials compute (not how they are scheduled)."""
    canonical = json.dumps(study.model_dump(mode="json", exclude=set(EXECUTION_FIELDS)), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- loading and checking ---------------------------------------------------------------------------


def _field_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _pydantic_problems(error: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for item in error.errors(include_url=False):
        message = item["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        if item["type"] == "extra_forbidden":
            message = "unknown key (not part of the study schema; check its spelling)"
        elif item["type"] == "missing":
            message = "required field is missing"
        problems.append((_field_path(item["loc"]), message))
    return problems


def parse_study(data: Any, source: str | None = None, *, check_trials: bool = True) -> Study:
    """Validate already-parsed YAML; raises :class:`StudyError` naming every bad field."""
    if not isinstance(data, dict):
        raise StudyError([("", f"the file must hold a mapping of study fields, got {type(data).__name__}")], source)
    try:
        study = Study.model_validate(data)
    except ValidationError as error:
        raise StudyError(_pydantic_problems(error), source) from None
    problems = _registry_problems(study)
    if problems:
        raise StudyError(problems, source)
    if check_trials:
        problems = _trial_problems(study)
        if problems:
            raise StudyError(problems, source)
    return study


def load_study(path: str | Path, *, check_trials: bool = True) -> Study:
    """Read and validate a study file; raises :class:`StudyError` (never a YAML or pydantic exception)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise StudyError([("", f"cannot read the study file: {error.strerror or error}")], str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise StudyError([("", f"not valid YAML{where}: {problem}")], str(path)) from None
    return parse_study(data, str(path), check_trials=check_trials)


def known_datasets(task_name: str, task) -> list[str]:
    """The dataset names a task accepts: its own list if it declares one, else the dataset registry.

    A task may declare ``DATASETS`` (a collection, e.g. the source→target
    pairs of a domain-adaptation task) or a function ``datasets()``.
    """
    declared = getattr(task, "datasets", None) or getattr(task, "DATASETS", None)
    if callable(declared):
        declared = declared()
    if declared is not None:
        return sorted(declared)
    from benchmark.data import available_datasets

    return sorted(available_datasets())


def _registry_problems(study: Study) -> list[tuple[str, str]]:
    from benchmark.losses import LOSSES
    from benchmark.trial import TASKS, task_module

    if study.task not in TASKS:
        return [("task", f"unknown task {study.task!r}; known tasks: {', '.join(sorted(TASKS))}")]
    task = task_module(study.task)
    problems = []
    datasets = known_datasets(study.task, task)
    if study.dataset not in datasets:
        problems.append(("dataset", f"unknown dataset {study.dataset!r} for task {study.task!r}; known: {', '.join(datasets)}"))
    if study.loss is not None and study.loss not in task.LOSSES:
        known = ", ".join(task.LOSSES)
        what = "unknown loss" if study.loss not in LOSSES else "loss does not fit this task:"
        problems.append(("loss", f"{what} {study.loss!r}; task {study.task!r} takes: {known}"))
    for index, arm in enumerate(study.arms):
        if arm.name not in task.ARMS:
            problems.append((f"arms[{index}].name", f"unknown arm {arm.name!r}; task {study.task!r} has: {', '.join(task.ARMS)}"))
    for section in ("search_space", "fixed"):
        for name in getattr(study, section):
            if name not in task.HYPERPARAMETERS:
                problems.append(
                    (f"{section}.{name}", f"unknown hyperparameter; task {study.task!r} has: {', '.join(task.HYPERPARAMETERS)}")
                )
    for name in sorted(set(study.search_space) & set(study.fixed)):
        problems.append((f"fixed.{name}", "is also in search_space; a hyperparameter is either searched or fixed"))
    for name in study.options:
        if name not in task.OPTIONS:
            problems.append((f"options.{name}", f"unknown option; task {study.task!r} has: {', '.join(task.OPTIONS) or 'none'}"))
    from benchmark.divergence import DivergenceRules

    try:
        DivergenceRules.from_mapping({**task.DIVERGENCE_DEFAULTS, **study.divergence})
    except (TypeError, ValueError) as error:
        problems.append(("divergence", str(error)))
    if study.confirm is not None and study.confirm.top_k > study.total_configs:
        problems.append(
            ("confirm.top_k", f"top_k ({study.confirm.top_k}) exceeds the number of configurations ({study.total_configs})")
        )
    return problems


def _trial_problems(study: Study) -> list[tuple[str, str]]:
    """Resolve every configuration under every arm; the first failure per field is reported."""
    from benchmark.trial import resolve
    from sweeps.sampling import sample_configs, trial_spec, search_trials

    configs = sample_configs(study)
    seen: dict[str, str] = {}
    for plan in search_trials(study, configs):
        if plan.replicate != 0:
            continue
        try:
            resolve(trial_spec(study, plan))
        except ValueError as error:
            field = _field_of(study, str(error))
            seen.setdefault(field, f"{error} (configuration {plan.config_id}, arm {plan.arm})")
    return sorted(seen.items())


def _field_of(study: Study, message: str) -> str:
    """The study field a ``resolve`` error is about (a hyperparameter it names, else the section)."""
    for section in ("fixed", "search_space"):
        for name in getattr(study, section):
            if re.search(rf"\b{re.escape(name)}\b", message):
                return f"{section}.{name}"
    for keyword, field in (("divergence", "divergence"), ("option", "options"), ("scheduler", "arms"),
                           ("x_min", "arms"), ("x_max", "arms"), ("loss", "loss"), ("dataset", "dataset")):
        if keyword in message:
            return field
    # A task default the study did not set (e.g. steps) names the hyperparameter itself.
    match = re.search(r"hyperparameter (\w+)", message)
    return f"fixed.{match.group(1)}" if match else "study"
