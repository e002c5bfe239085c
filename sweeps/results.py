"""A study's results directory: the two Parquet tables, per-trial parts, the manifest and resume bookkeeping.

Layout of ``<results>/<study>/`` (DESIGN.md, "Result tables"):

- ``trials.parquet`` — one row per ``trial_key``;
- ``curves.parquet`` — the logged steps of every trial, long format;
- ``manifest.json`` — study hash, code and package versions, counts per status;
- ``study.yaml`` — the study file as it was run;
- ``parts/`` — a finished trial's row and curves, written by the worker that
  ran it, until the driver has folded them into the tables (so a driver killed
  in between loses nothing: the next run folds them in first);
- ``tune/`` — Ray Tune's experiment folders and trial checkpoints (removed
  when the study completes).

Only the driver writes the tables, always whole and atomically, keyed by
``trial_key`` (a retried or resumed trial replaces its earlier row).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Iterable

import pandas as pd
import pyarrow as pa

from sweeps.storage import Location

__all__ = ["StudyResults", "ChangedStudyError", "FINISHED_STATUSES", "write_part", "package_versions"]

TRIALS_FILE = "trials.parquet"
CURVES_FILE = "curves.parquet"
MANIFEST_FILE = "manifest.json"
STUDY_COPY = "study.yaml"
CHECKPOINT_INDEX = "checkpoints.json"
PARTS_DIR = "parts"
TUNE_DIR = "tune"

# A trial with one of these statuses is done; an ``error`` row is retried when the study is run again.
FINISHED_STATUSES = ("ok", "diverged")

_PACKAGES = ("torch", "torchvision", "ray", "numpy", "pandas", "pyarrow", "scipy", "torch-fidelity", "pydantic", "gapaware-bench")
_INT_COLUMNS = ("config_id", "seed", "steps_done")
_NULLABLE_INT_COLUMNS = ("divergence_step",)
_STRING_COLUMNS = ("divergence_reason", "error", "metric_name", "metric_mode", "loss", "scheduler", "started_at")
_ROW_ORDER = ["stage", "config_id", "arm", "seed"]


class ChangedStudyError(RuntimeError):
    """The results directory belongs to a different version of the study."""


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _part_names(trial_key: str) -> tuple[str, str]:
    return f"{trial_key}.row.parquet", f"{trial_key}.curves.parquet"


def _rows_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    frame = pd.DataFrame(list(rows))
    if frame.empty:
        return pa.Table.from_pandas(frame, preserve_index=False)
    stage_rank = frame["stage"].map({"search": 0, "confirm": 1})
    frame = frame.assign(_stage_rank=stage_rank).sort_values(["_stage_rank", *_ROW_ORDER[1:]]).drop(columns="_stage_rank")
    for column in _INT_COLUMNS:
        if column in frame:
            frame[column] = frame[column].astype("int64")
    for column in _NULLABLE_INT_COLUMNS:
        if column in frame:
            frame[column] = pd.array([None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v) for v in frame[column]], dtype="Int64")
    for column in _STRING_COLUMNS:
        if column in frame:  # typed even when every value is null, so the schema does not depend on the outcomes
            frame[column] = frame[column].astype("string")
    if "diverged" in frame:
        frame["diverged"] = frame["diverged"].astype(bool)
    return pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)


def write_part(parts: Location, row: dict[str, Any], curves: pd.DataFrame) -> None:
    """Called by the worker that ran a trial: its row and curves, curves first (the row marks a complete part)."""
    row_name, curves_name = _part_names(row["trial_key"])
    parts.write_table(curves_name, pa.Table.from_pandas(curves, preserve_index=False))
    parts.write_table(row_name, pa.Table.from_pylist([row]))


class StudyResults:
    """The results of one study; the driver's view (load, merge, write)."""

    def __init__(self, root: Location, study_name: str) -> None:
        self.dir = root.child(study_name)
        self.parts = self.dir.child(PARTS_DIR)
        self.tune = self.dir.child(TUNE_DIR)
        self._rows: dict[str, dict[str, Any]] = {}
        self._curves: dict[str, pd.DataFrame] = {}
        self._checkpoints: dict[str, str] = {}
        self._absorbed: set[str] = set()  # parts folded in, to delete once the tables are written
        self.manifest: dict[str, Any] = {}

    # -- opening ----------------------------------------------------------------------------------

    def open(self, *, study_hash: str, study_file: bytes, study_source: str, fresh: bool, extra: dict[str, Any] | None = None) -> None:
        """Start or continue the study in this directory.

        A directory whose manifest has another study hash is refused (unless
        ``fresh``, which deletes it first): its rows were computed by different settings.
        """
        if fresh:
            self.dir.delete_tree()
        if self.dir.exists(MANIFEST_FILE):
            previous = json.loads(self.dir.read_bytes(MANIFEST_FILE))
            if previous.get("study_hash") != study_hash:
                raise ChangedStudyError(
                    f"{self.dir} holds results of a different version of study {previous.get('study')!r} "
                    f"(the study file changed since: {previous.get('study_file')}, run at {previous.get('created_at')}).\n"
                    "Its trials would mix two settings. Either restore the study file, give the changed study "
                    "another name, or start over with --fresh (deletes these results)."
                )
            self.manifest = previous
        elif self.dir.exists(TRIALS_FILE):
            raise ChangedStudyError(
                f"{self.dir} holds a trials table but no manifest; it was not written by this harness's "
                "study runner. Choose another results location or start over with --fresh."
            )
        self._load()
        self.manifest.update(
            {
                "study_hash": study_hash,
                "study_file": study_source,
                "study_file_sha256": hashlib.sha256(study_file).hexdigest(),
                "created_at": self.manifest.get("created_at", _now()),
                "results": self.dir.uri,
                **(extra or {}),
            }
        )
        self.dir.write_bytes(STUDY_COPY, study_file)
        self.flush()

    def _load(self) -> None:
        if self.dir.exists(TRIALS_FILE):
            for row in self.dir.read_table(TRIALS_FILE).to_pandas().to_dict("records"):
                self._rows[row["trial_key"]] = _clean_row(row)
        if self.dir.exists(CURVES_FILE):
            curves = self.dir.read_table(CURVES_FILE).to_pandas()
            for key, frame in curves.groupby("trial_key", sort=False):
                self._curves[key] = frame.dropna(axis=1, how="all").reset_index(drop=True)
        if self.dir.exists(CHECKPOINT_INDEX):
            self._checkpoints = json.loads(self.dir.read_bytes(CHECKPOINT_INDEX))
        # Parts left by a driver that died before folding them in.
        for name in self.parts.list_files(".row.parquet"):
            self.absorb_part(name[: -len(".row.parquet")], flush=False)

    # -- adding results ----------------------------------------------------------------------------

    def absorb_part(self, trial_key: str, *, flush: bool = True) -> dict[str, Any] | None:
        """Fold the part a worker wrote for ``trial_key`` into the tables; its row, or None if there is none."""
        row_name, curves_name = _part_names(trial_key)
        if not self.parts.exists(row_name):
            return None
        row = _clean_row(self.parts.read_table(row_name).to_pylist()[0])
        curves = self.parts.read_table(curves_name).to_pandas() if self.parts.exists(curves_name) else pd.DataFrame()
        self._absorbed.add(trial_key)
        self.add(row, curves, flush=flush)
        return row

    def add(self, row: dict[str, Any], curves: pd.DataFrame | None = None, *, flush: bool = True) -> None:
        key = row["trial_key"]
        self._rows[key] = row
        if row.get("status") in FINISHED_STATUSES and self._checkpoints.pop(key, None) is not None:
            self._write_checkpoint_index()
        if curves is not None and not curves.empty:
            self._curves[key] = curves
        else:
            self._curves.pop(key, None)
        if flush:
            self.flush()

    def record_checkpoint(self, trial_key: str, path: str) -> None:
        """Remember a trial's latest checkpoint, so the next run can resume it from there."""
        if trial_key in self._rows and self._rows[trial_key].get("status") in FINISHED_STATUSES:
            return  # a late notice about a trial already folded in
        self._checkpoints[trial_key] = path
        self._write_checkpoint_index()

    def _write_checkpoint_index(self) -> None:
        self.dir.write_bytes(CHECKPOINT_INDEX, json.dumps(self._checkpoints, indent=1, sort_keys=True).encode())

    def checkpoint_of(self, trial_key: str) -> str | None:
        return self._checkpoints.get(trial_key)

    def _delete_parts(self, keys: Iterable[str]) -> None:
        for key in keys:
            for name in _part_names(key):
                self.parts.delete(name)

    # -- queries -----------------------------------------------------------------------------------

    def trials(self) -> pd.DataFrame:
        return _rows_table(self._rows.values()).to_pandas()

    def curves(self) -> pd.DataFrame:
        frames = [self._curves[key] for key in sorted(self._curves)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["trial_key", "step"])

    def finished_keys(self) -> set[str]:
        return {key for key, row in self._rows.items() if row.get("status") in FINISHED_STATUSES}

    def row(self, trial_key: str) -> dict[str, Any] | None:
        return self._rows.get(trial_key)

    def status_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for row in self._rows.values():
            stage = counts.setdefault(row["stage"], {})
            stage[row["status"]] = stage.get(row["status"], 0) + 1
        return counts

    # -- writing -----------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write both tables and the manifest (each atomically), then drop the parts now in the tables."""
        self.dir.write_table(TRIALS_FILE, _rows_table(self._rows.values()))
        curves = self.curves()
        self.dir.write_table(CURVES_FILE, pa.Table.from_pandas(curves, preserve_index=False))
        self.write_manifest()
        self._delete_parts(self._absorbed)
        self._absorbed.clear()

    def write_manifest(self, **updates: Any) -> None:
        from benchmark.trial import code_version

        self.manifest.update(updates)
        self.manifest.update(
            {
                "code_version": code_version(),
                "packages": package_versions(),
                "counts": self.status_counts(),
                "trials": len(self._rows),
                "updated_at": _now(),
            }
        )
        self.dir.write_bytes(MANIFEST_FILE, json.dumps(self.manifest, indent=2, sort_keys=True, default=str).encode())

    def remove_tune_files(self) -> None:
        """Ray Tune's experiment folders and checkpoints: only needed until the study completes."""
        self.tune.delete_tree()
        if not self.parts.list_files():
            self.parts.delete_tree()
        self._checkpoints.clear()
        self.dir.delete(CHECKPOINT_INDEX)


def _clean_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row read back from Parquet, with pandas' missing-value markers turned into None/NaN as written."""
    clean = {}
    for name, value in row.items():
        if value is pd.NA or value is pd.NaT:
            value = None
        elif hasattr(value, "item") and not isinstance(value, (str, bytes)):
            value = value.item()  # numpy scalar -> Python
        clean[name] = value
    return clean
