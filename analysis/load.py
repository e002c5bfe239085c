"""Reading a study's results (local path or cloud URI) and checking them against the contract.

A study directory `results/<study>/` holds `trials.parquet` (required),
`curves.parquet`, `study.yaml` and `manifest.json` (optional).  Any
filesystem pyarrow knows works: a local path, `s3://...`, `gs://...`.

A table that breaks the contract in DESIGN.md ("Result tables") is refused
with a `ResultsTableError` naming the table, the column and what is wrong.
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import yaml

__all__ = ["ResultsTableError", "StudyResults", "load", "find_studies", "resolve", "BASELINE_ARM", "SCHEDULER_ARM"]

BASELINE_ARM = "constant"
SCHEDULER_ARM = "gap_aware"

STAGES = {"search", "confirm"}
STATUSES = {"ok", "diverged", "error"}
MODES = {"min", "max"}

# Columns the analysis needs, by the kind of arrow type they must have.
TRIALS_REQUIRED = {
    "study": "string", "arm": "string", "stage": "string", "trial_key": "string",
    "status": "string", "metric_name": "string", "metric_mode": "string",
    "config_id": "integer", "seed": "integer",
    "diverged": "boolean",
    "val_metric": "number", "test_metric": "number",
}
# Columns used when present; their type is checked if they exist.
TRIALS_OPTIONAL = {
    "task": "string", "dataset": "string", "loss": "string", "divergence_reason": "string",
    "divergence_step": "number", "steps_done": "number", "wall_time_s": "number", "ideal_loss": "number",
    "hp_lr_d": "number", "hp_lr_g": "number",
}
CURVES_REQUIRED = {"trial_key": "string", "step": "integer"}
CURVES_OPTIONAL = {
    "d_loss": "number", "g_loss": "number", "d_loss_ema": "number", "lr_d": "number",
    "lr_multiplier": "number", "ideal_loss": "number",
}


class ResultsTableError(ValueError):
    """A results table or directory does not follow the contract in DESIGN.md."""


@dataclass
class StudyResults:
    """One study's tables and metadata, validated."""

    name: str
    location: str  # the study directory (path or URI)
    trials: pd.DataFrame  # every row, including status == 'error'
    curves: pd.DataFrame | None
    study_config: dict | None
    manifest: dict | None
    notes: list[str] = field(default_factory=list)  # what was missing or unreadable

    @property
    def analysed(self) -> pd.DataFrame:
        """Rows the analysis uses: status 'ok' or 'diverged' (errors are bugs, not results)."""
        return self.trials[self.trials["status"] != "error"]

    @property
    def n_errors(self) -> int:
        return int((self.trials["status"] == "error").sum())

    @property
    def metric_name(self) -> str:
        names = self.analysed["metric_name"].dropna().unique()
        return str(names[0]) if len(names) else "metric"

    @property
    def metric_mode(self) -> str:
        modes = self.analysed["metric_mode"].dropna().unique()
        return str(modes[0]) if len(modes) else "min"


def resolve(path_or_uri: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path within it) for a local path or a URI such as s3://bucket/dir."""
    text = os.fspath(path_or_uri)
    if "://" in text:
        try:
            return pafs.FileSystem.from_uri(text)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
            raise ResultsTableError(f"cannot open {text}: {exc}") from exc
    return pafs.LocalFileSystem(), os.path.abspath(text)


def _exists(fs: pafs.FileSystem, path: str, kind=pafs.FileType.File) -> bool:
    return fs.get_file_info(path).type == kind


def _type_kind(arrow_type: pa.DataType) -> set[str]:
    """The kinds ('string', 'integer', ...) an arrow type satisfies."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_null(arrow_type):  # an all-null column fits any kind
        return {"string", "integer", "boolean", "number"}
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return {"string"}
    if pa.types.is_boolean(arrow_type):
        return {"boolean"}
    if pa.types.is_integer(arrow_type):
        return {"integer", "number"}
    if pa.types.is_floating(arrow_type):
        return {"number"}
    return set()


def _check_schema(schema: pa.Schema, required: dict, optional: dict, table: str) -> None:
    names = set(schema.names)
    missing = [c for c in required if c not in names]
    if missing:
        raise ResultsTableError(
            f"{table}: missing column {missing[0]!r}"
            + (f" (and {', '.join(map(repr, missing[1:]))})" if len(missing) > 1 else "")
            + "; DESIGN.md 'Result tables' lists the columns every study must write"
        )
    for column, kind in {**required, **optional}.items():
        if column in names and kind not in _type_kind(schema.field(column).type):
            raise ResultsTableError(
                f"{table}: column {column!r} has type {schema.field(column).type}, expected {kind}"
            )


def _check_trial_values(trials: pd.DataFrame, table: str) -> None:
    for column in ("study", "arm", "stage", "trial_key", "status", "config_id", "seed"):
        nulls = int(trials[column].isna().sum())
        if nulls:
            raise ResultsTableError(f"{table}: column {column!r} has {nulls} null value(s)")
    for column, allowed in (("stage", STAGES), ("status", STATUSES)):
        bad = sorted(set(trials[column].unique()) - allowed)
        if bad:
            raise ResultsTableError(f"{table}: column {column!r} has value {bad[0]!r}; allowed: {sorted(allowed)}")
    dupes = trials["trial_key"][trials["trial_key"].duplicated()]
    if len(dupes):
        raise ResultsTableError(f"{table}: column 'trial_key' is not unique (e.g. {dupes.iloc[0]!r} repeats)")
    ok = trials[trials["status"] != "error"]
    if ok["diverged"].isna().any():
        raise ResultsTableError(f"{table}: column 'diverged' is null in a row whose status is not 'error'")
    inconsistent = ok["diverged"].astype(bool) != (ok["status"] == "diverged")
    if inconsistent.any():
        key = ok.loc[inconsistent, "trial_key"].iloc[0]
        raise ResultsTableError(
            f"{table}: column 'diverged' disagrees with status in {int(inconsistent.sum())} row(s), e.g. {key!r}"
        )
    bad_modes = sorted(set(ok["metric_mode"].dropna().unique()) - MODES)
    if bad_modes:
        raise ResultsTableError(f"{table}: column 'metric_mode' has value {bad_modes[0]!r}; allowed: ['max', 'min']")
    for column in ("metric_name", "metric_mode"):
        values = ok[column].dropna().unique()
        if len(values) > 1:
            raise ResultsTableError(
                f"{table}: column {column!r} has several values {sorted(map(str, values))}; one study reports one metric"
            )


def _read_parquet(fs: pafs.FileSystem, path: str, required: dict, optional: dict) -> pd.DataFrame:
    try:
        table = pq.read_table(path, filesystem=fs)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ResultsTableError(f"{path}: not a readable Parquet file ({exc})") from exc
    if "status" in table.schema.names and table.num_rows:
        statuses = set(table.column("status").to_pylist())
        if statuses == {"error"}:  # error rows carry no metric columns: say what really happened
            raise ResultsTableError(
                f"{path}: all {table.num_rows} trials have status 'error' (see their 'error' column); nothing to analyse"
            )
    _check_schema(table.schema, required, optional, path)
    return table.to_pandas()


def _read_text(fs: pafs.FileSystem, path: str) -> str:
    with fs.open_input_stream(path) as stream:
        return stream.read().decode("utf-8")


def load(path_or_uri: str | os.PathLike) -> StudyResults:
    """Load and validate one study: a directory (or URI) holding trials.parquet, or that file itself."""
    text = os.fspath(path_or_uri)
    remote = "://" in text
    fs, path = resolve(text)
    if path.endswith(".parquet") and _exists(fs, path):  # the trials file itself was given
        path = posixpath.dirname(path) if remote else os.path.dirname(path)
        text = text.rsplit("/", 1)[0] if remote else os.path.dirname(os.path.abspath(text))
    join = posixpath.join if remote else os.path.join
    trials_path = join(path, "trials.parquet")
    if not _exists(fs, trials_path):
        raise ResultsTableError(
            f"no trials.parquet in {text}; give a study directory written by "
            "`python -m sweeps run` (results/<study>/)"
        )
    trials = _read_parquet(fs, trials_path, TRIALS_REQUIRED, TRIALS_OPTIONAL)
    if trials.empty:
        raise ResultsTableError(f"{trials_path}: the table has no rows")
    _check_trial_values(trials, trials_path)
    trials["diverged"] = trials["diverged"].fillna(False).astype(bool)

    notes: list[str] = []
    curves = None
    curves_path = join(path, "curves.parquet")
    if _exists(fs, curves_path):
        curves = _read_parquet(fs, curves_path, CURVES_REQUIRED, CURVES_OPTIONAL)
    else:
        notes.append("no curves.parquet: training traces (multiplier, smoothed loss) are not shown")

    study_config = None
    yaml_path = join(path, "study.yaml")
    if _exists(fs, yaml_path):
        try:
            study_config = yaml.safe_load(_read_text(fs, yaml_path))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            notes.append(f"study.yaml could not be read ({exc.__class__.__name__}); settings not shown")
        if study_config is not None and not isinstance(study_config, dict):
            notes.append("study.yaml is not a mapping; settings not shown")
            study_config = None
    else:
        notes.append("no study.yaml: study settings not shown")

    manifest = None
    manifest_path = join(path, "manifest.json")
    if _exists(fs, manifest_path):
        try:
            manifest = json.loads(_read_text(fs, manifest_path))
        except (ValueError, UnicodeDecodeError) as exc:
            notes.append(f"manifest.json could not be read ({exc.__class__.__name__}); provenance not shown")
    else:
        notes.append("no manifest.json: provenance not shown")

    studies = trials["study"].unique()
    name = str(studies[0]) if len(studies) == 1 else posixpath.basename(path.rstrip("/"))
    return StudyResults(name=name, location=text, trials=trials, curves=curves,
                        study_config=study_config, manifest=manifest, notes=notes)


def find_studies(path_or_uri: str | os.PathLike) -> list[str]:
    """Study directories to report on: the path itself if it holds trials.parquet, else its subdirectories that do."""
    text = os.fspath(path_or_uri)
    fs, path = resolve(text)
    remote = "://" in text
    join = posixpath.join if remote else os.path.join
    if _exists(fs, join(path, "trials.parquet")) or (path.endswith(".parquet") and _exists(fs, path)):
        return [text]
    if not _exists(fs, path, pafs.FileType.Directory):
        raise ResultsTableError(f"{text}: no such directory")
    found = []
    for info in sorted(fs.get_file_info(pafs.FileSelector(path)), key=lambda i: i.path):
        if info.type == pafs.FileType.Directory and _exists(fs, join(info.path, "trials.parquet")):
            found.append(text.rstrip("/") + "/" + info.base_name if remote else join(text, info.base_name))
    if not found:
        raise ResultsTableError(
            f"{text}: neither a study directory (no trials.parquet) nor a folder of study directories"
        )
    return found
