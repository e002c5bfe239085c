"""Results directory: atomic tables keyed by trial_key, parts from workers, manifest, refusal of a changed study."""

from __future__ import annotations

import json
import math

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from sweeps.results import ChangedStudyError, StudyResults, write_part
from sweeps.storage import Location, check_location


def row(key: str, status: str = "ok", value: float = 1.0, **extra) -> dict:
    stage, config_id, arm, seed = key.split("-")
    return {
        "study": "s", "task": "gan", "dataset": "digits", "loss": "nonsaturating", "arm": arm, "stage": stage,
        "config_id": int(config_id), "seed": int(seed), "trial_key": key, "hp_lr_d": 1e-3, "hp_steps": 30,
        "status": status, "diverged": status == "diverged",
        "divergence_reason": "nonfinite" if status == "diverged" else None,
        "divergence_step": 7 if status == "diverged" else None,
        "metric_name": "fid", "metric_mode": "min", "val_metric": value if status == "ok" else math.nan,
        "test_metric": value, "steps_done": 30, "wall_time_s": 0.5, **extra,
    }


def curves(key: str, steps=(10, 20, 30)) -> pd.DataFrame:
    return pd.DataFrame({"trial_key": key, "step": list(steps), "d_loss": [1.0] * len(steps)})


def open_store(root: Location, *, study_hash="abc", fresh=False) -> StudyResults:
    store = StudyResults(root, "s")
    store.open(study_hash=study_hash, study_file=b"name: s\n", study_source="s.yaml", fresh=fresh, extra={"study": "s"})
    return store


@pytest.fixture
def root(tmp_path) -> Location:
    return Location.parse(str(tmp_path / "results"))


def test_location_schemes():
    assert check_location("results") == "results"
    for good in ("s3://bucket/prefix", "gs://bucket/x", "file:///tmp/x"):
        assert check_location(good) == good
    for bad in ("ftp://host/x", "hdfs://nn/x", "http://example.com/x", ""):
        with pytest.raises(ValueError):
            check_location(bad)


def test_tables_hold_one_row_per_trial_key(root):
    store = open_store(root)
    store.add(row("search-0-constant-5", value=3.0), curves("search-0-constant-5"))
    store.add(row("search-0-gap_aware-5", status="diverged"), curves("search-0-gap_aware-5", steps=(10,)))
    # A retried trial reports again: its row and curves replace the first ones.
    store.add(row("search-0-constant-5", value=2.0), curves("search-0-constant-5", steps=(10, 20)))
    trials = pd.read_parquet(store.dir.path + "/trials.parquet")
    assert sorted(trials["trial_key"]) == ["search-0-constant-5", "search-0-gap_aware-5"]
    assert trials.set_index("trial_key").loc["search-0-constant-5", "val_metric"] == 2.0
    assert str(trials["divergence_step"].dtype) == "Int64" and trials["diverged"].dtype == bool
    table_curves = pd.read_parquet(store.dir.path + "/curves.parquet")
    assert table_curves.groupby("trial_key").size().to_dict() == {"search-0-constant-5": 2, "search-0-gap_aware-5": 1}
    assert store.finished_keys() == {"search-0-constant-5", "search-0-gap_aware-5"}


def test_writes_are_atomic_and_leave_no_temporary_files(root):
    store = open_store(root)
    for i in range(5):
        store.add(row(f"search-{i}-constant-1"), curves(f"search-{i}-constant-1"))
    names = sorted(info.base_name for info in root.fs.get_file_info(pafs.FileSelector(store.dir.path)))
    assert names == ["curves.parquet", "manifest.json", "study.yaml", "trials.parquet"]
    assert pq.read_table(store.dir.path + "/trials.parquet").num_rows == 5


def test_error_rows_are_replaced_when_the_trial_is_rerun(root):
    store = open_store(root)
    store.add(row("search-0-constant-1", status="error", error="worker died"))
    assert store.finished_keys() == set()  # an error is retried by the next run
    store.add(row("search-0-constant-1"), curves("search-0-constant-1"))
    assert store.finished_keys() == {"search-0-constant-1"}
    assert store.status_counts() == {"search": {"ok": 1}}


def test_worker_parts_are_folded_in_and_survive_a_dead_driver(root):
    store = open_store(root)
    key = "search-1-gap_aware-9"
    write_part(store.parts, row(key), curves(key))
    assert store.absorb_part(key)["trial_key"] == key
    assert store.parts.list_files() == []  # folded in, then deleted
    # A worker finished, but the driver died before folding its part in: the next run does it.
    write_part(store.parts, row("search-2-constant-9"), curves("search-2-constant-9"))
    reopened = open_store(root)
    assert reopened.finished_keys() == {key, "search-2-constant-9"}
    assert len(pd.read_parquet(reopened.dir.path + "/trials.parquet")) == 2
    assert reopened.parts.list_files() == []


def test_a_half_written_part_is_ignored(root):
    store = open_store(root)
    key = "search-3-constant-1"
    store.parts.write_table(f"{key}.curves.parquet", pa.Table.from_pandas(curves(key)))
    assert store.absorb_part(key) is None  # curves without the row: the worker died while writing
    assert key not in store.finished_keys()


def test_manifest_records_hash_versions_and_counts(root):
    store = open_store(root, study_hash="h1")
    store.add(row("search-0-constant-1"))
    store.add(row("search-0-gap_aware-1", status="diverged"))
    manifest = json.loads(store.dir.read_bytes("manifest.json"))
    assert manifest["study_hash"] == "h1" and manifest["study"] == "s"
    assert len(manifest["study_file_sha256"]) == 64
    assert manifest["counts"] == {"search": {"ok": 1, "diverged": 1}}
    assert manifest["packages"]["pyarrow"] != "not installed"
    assert manifest["code_version"]
    assert store.dir.read_bytes("study.yaml") == b"name: s\n"


def test_a_changed_study_is_refused_unless_fresh(root):
    store = open_store(root, study_hash="h1")
    store.add(row("search-0-constant-1"))
    with pytest.raises(ChangedStudyError, match="--fresh"):
        open_store(root, study_hash="h2")
    fresh = open_store(root, study_hash="h2", fresh=True)
    assert fresh.finished_keys() == set()
    assert pd.read_parquet(fresh.dir.path + "/trials.parquet").empty


def test_checkpoint_index_forgets_finished_trials(root):
    store = open_store(root)
    store.record_checkpoint("search-0-constant-1", "/x/checkpoint_000001")
    store.record_checkpoint("search-1-constant-1", "/x/checkpoint_000002")
    store.add(row("search-0-constant-1"))
    reopened = open_store(root)
    assert reopened.checkpoint_of("search-0-constant-1") is None
    assert reopened.checkpoint_of("search-1-constant-1") == "/x/checkpoint_000002"


def test_results_work_on_a_non_local_filesystem(tmp_path):
    # The same code path a bucket takes: a pyarrow filesystem that is not the local one.
    bucket = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    root = Location(bucket, "bucket/prefix", "mock://bucket/prefix")
    store = open_store(root)
    store.add(row("search-0-constant-1"), curves("search-0-constant-1"))
    assert (tmp_path / "bucket" / "prefix" / "s" / "trials.parquet").exists()
    assert open_store(root).finished_keys() == {"search-0-constant-1"}
