"""Loading results: contract checks with errors that name the column, local paths and URIs."""

import os

import numpy as np
import pandas as pd
import pytest

from analysis import ResultsTableError, find_studies, load
from analysis_synthetic import full_study, make_trials, write_parquet, write_study


@pytest.fixture(scope="module")
def trials():
    return make_trials(np.random.default_rng(0), n_configs=6, confirm_seeds=2, n_errors=1)


def test_load_full_study(tmp_path):
    directory = full_study(str(tmp_path / "synth"), n_configs=6, confirm_seeds=2, n_errors=2)
    study = load(directory)
    assert study.name == "synth"
    assert study.n_errors == 2 and (study.analysed["status"] != "error").all()
    assert study.metric_name == "fid" and study.metric_mode == "min"
    assert study.curves is not None and {"trial_key", "step", "lr_multiplier"} <= set(study.curves.columns)
    assert study.study_config["name"] == "synth" and study.manifest["counts"]["error"] == 2
    assert study.notes == []
    assert study.trials["diverged"].dtype == bool
    # The trials file itself, and a file:// URI through pyarrow's filesystem layer, load the same study.
    assert load(os.path.join(directory, "trials.parquet")).location == directory
    by_uri = load("file://" + directory)
    pd.testing.assert_frame_equal(by_uri.trials, study.trials)


def test_optional_files_absent_are_noted(tmp_path, trials):
    study = load(write_study(str(tmp_path / "bare"), trials))
    assert study.curves is None and study.study_config is None and study.manifest is None
    assert any("curves.parquet" in n for n in study.notes)
    assert any("study.yaml" in n for n in study.notes)
    assert any("manifest.json" in n for n in study.notes)


@pytest.mark.parametrize("column", ["val_metric", "config_id", "metric_mode", "diverged"])
def test_missing_column_is_named(tmp_path, trials, column):
    directory = write_study(str(tmp_path / column), trials.drop(columns=[column]))
    with pytest.raises(ResultsTableError, match=f"missing column '{column}'"):
        load(directory)


def test_mistyped_columns_are_named(tmp_path, trials):
    bad = trials.assign(config_id=trials["config_id"].astype(str))
    with pytest.raises(ResultsTableError, match="column 'config_id' has type (large_)?string, expected integer"):
        load(write_study(str(tmp_path / "a"), bad))
    bad = trials.assign(test_metric=trials["test_metric"].astype(str))
    with pytest.raises(ResultsTableError, match="'test_metric'.*expected number"):
        load(write_study(str(tmp_path / "b"), bad))
    bad = trials.assign(hp_lr_d="fast")  # optional columns are type-checked when present
    with pytest.raises(ResultsTableError, match="'hp_lr_d'"):
        load(write_study(str(tmp_path / "c"), bad))


def test_bad_values_are_named(tmp_path, trials):
    cases = {
        "stage": (trials.assign(stage=trials["stage"].replace("confirm", "final")), "'stage' has value 'final'"),
        "status": (trials.assign(status=trials["status"].replace("ok", "done")), "'status' has value 'done'"),
        "dupe": (pd.concat([trials, trials.iloc[[0]]]), "'trial_key' is not unique"),
        "mode": (trials.assign(metric_mode="lower"), "'metric_mode' has value 'lower'"),
        "metric": (trials.assign(metric_name=["fid", "kid"] * (len(trials) // 2) + ["fid"] * (len(trials) % 2)),
                   "'metric_name' has several values"),
        "diverged": (trials.assign(diverged=False), "'diverged' disagrees with status"),
    }
    for name, (table, message) in cases.items():
        with pytest.raises(ResultsTableError, match=message):
            load(write_study(str(tmp_path / name), table))


def test_missing_or_unreadable_files(tmp_path):
    with pytest.raises(ResultsTableError, match="no trials.parquet"):
        load(str(tmp_path))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "trials.parquet").write_text("not parquet")
    with pytest.raises(ResultsTableError, match="not a readable Parquet file"):
        load(str(tmp_path / "broken"))
    empty = make_trials(np.random.default_rng(0), n_configs=1).iloc[:0]
    with pytest.raises(ResultsTableError, match="no rows"):
        load(write_study(str(tmp_path / "empty"), empty))


def test_only_error_rows_is_said_plainly(tmp_path, trials):
    errors = trials[trials["status"] == "error"].drop(columns=["metric_name", "metric_mode"])
    with pytest.raises(ResultsTableError, match="all 1 trials have status 'error'"):
        load(write_study(str(tmp_path / "errors"), errors))


def test_bad_curves_and_yaml(tmp_path, trials):
    directory = write_study(str(tmp_path / "s"), trials)
    write_parquet(pd.DataFrame({"trial_key": ["a"], "d_loss": [1.0]}), os.path.join(directory, "curves.parquet"))
    with pytest.raises(ResultsTableError, match="curves.parquet: missing column 'step'"):
        load(directory)
    os.remove(os.path.join(directory, "curves.parquet"))
    with open(os.path.join(directory, "study.yaml"), "w") as handle:
        handle.write("name: [unclosed\n")
    study = load(directory)
    assert study.study_config is None and any("study.yaml could not be read" in n for n in study.notes)


def test_find_studies(tmp_path, trials):
    write_study(str(tmp_path / "b"), trials)
    write_study(str(tmp_path / "a"), trials)
    (tmp_path / "report").mkdir()  # the cross-study report folder is not a study
    assert find_studies(str(tmp_path)) == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert find_studies(str(tmp_path / "a")) == [str(tmp_path / "a")]
    with pytest.raises(ResultsTableError, match="neither a study directory"):
        find_studies(str(tmp_path / "report"))
    with pytest.raises(ResultsTableError, match="no such directory"):
        find_studies(str(tmp_path / "nope"))
