"""Study files: malformed ones are rejected with the field named (exit status 2, before Ray starts)."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sweeps.schema import Grid, LogUniform, StudyError, load_study, parse_study, study_hash

REPO = Path(__file__).resolve().parent.parent
STUDIES = REPO / "sweeps" / "studies"

VALID = {
    "name": "tiny",
    "task": "gan",
    "dataset": "digits",
    "arms": ["constant", "gap_aware"],
    "n_configs": 2,
    "search_space": {
        "lr_d": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
        "lr_g": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
    },
    "fixed": {"steps": 30, "eval_every": 15, "eval_samples": 50},
    "confirm": {"top_k": 1, "n_seeds": 2},
    "results": "results",
}


def with_changes(**changes) -> dict:
    study = copy.deepcopy(VALID)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = study
        for part in parents:
            node = node[part]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return study


DELETE = object()

# (description, the malformed study, a field path that must appear in the message)
MALFORMED = [
    ("unknown top-level key", with_changes(n_config=3), "n_config"),
    ("unknown key inside a parameter", with_changes(search_space__lr_d={"type": "loguniform", "low": 1e-4, "high": 1e-2, "lower": 1}), "search_space.lr_d.loguniform.lower"),
    ("reversed bounds", with_changes(search_space__lr_d={"type": "loguniform", "low": 1e-2, "high": 1e-4}), "search_space.lr_d"),
    ("non-positive log-uniform bound", with_changes(search_space__lr_g={"type": "loguniform", "low": 0.0, "high": 1e-2}), "search_space.lr_g.loguniform.low"),
    ("negative steps", with_changes(fixed__steps=-5), "fixed.steps"),
    ("unknown dataset", with_changes(dataset="imagenet21k"), "dataset"),
    ("unknown loss", with_changes(loss="focal"), "loss"),
    ("loss of another task", with_changes(loss="domain_bce"), "loss"),
    ("unknown arm", with_changes(arms=["constant", "cosine_decay"]), "arms[1].name"),
    ("gpu fraction above one", with_changes(resources={"cpus": 1, "gpus": 1.5}), "resources.gpus"),
    ("negative gpu fraction", with_changes(resources={"cpus": 1, "gpus": -0.25}), "resources.gpus"),
    ("zero configurations", with_changes(n_configs=0), "n_configs"),
    ("missing name", with_changes(name=DELETE), "name"),
    ("wrong type", with_changes(n_configs="many"), "n_configs"),
    ("wrong type of a list", with_changes(arms="constant"), "arms"),
    ("unsupported results URI scheme", with_changes(results="ftp://host/results"), "results"),
    ("bucket URI without bucket", with_changes(results="s3://"), "results"),
    ("unknown task", with_changes(task="rl"), "task"),
    ("unknown hyperparameter", with_changes(fixed__learning_rate=0.1), "fixed.learning_rate"),
    ("unknown parameter type", with_changes(search_space__lr_d={"type": "normal", "low": 1, "high": 2}), "search_space.lr_d"),
    ("duplicate arms", with_changes(arms=["gap_aware", "gap_aware"]), "arms"),
    ("scheduler on the constant arm", with_changes(arms=[{"name": "constant", "scheduler": {"h_min": 0.5}}, "gap_aware"]), "arms[0]"),
    ("scheduler setting out of range", with_changes(arms=["constant", {"name": "gap_aware", "scheduler": {"h_min": 2.0}}]), "arms[1].scheduler.h_min"),
    ("confirm top_k above the configurations", with_changes(confirm={"top_k": 5, "n_seeds": 2}), "confirm.top_k"),
    ("unknown divergence rule", with_changes(divergence={"patience": 3}), "divergence"),
    ("divergence rule out of range", with_changes(divergence={"collapse_fraction": 2.0}), "divergence"),
    ("unknown task option", with_changes(options={"colour": "red"}), "options.colour"),
    ("searched and fixed", with_changes(fixed__lr_d=0.1), "fixed.lr_d"),
    ("unsafe study name", with_changes(name="../escape"), "name"),
    ("beta out of range for the task", with_changes(fixed__beta1=1.5), "fixed.beta1"),
]


@pytest.mark.parametrize("description,data,field", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_study_is_rejected_naming_the_field(description, data, field):
    with pytest.raises(StudyError) as caught:
        parse_study(data, "bad.yaml")
    message = str(caught.value)
    assert field in message, message
    assert message.startswith("invalid study file bad.yaml")


def test_invalid_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: tiny\ntask: gan\narms: [constant, gap_aware\n")
    with pytest.raises(StudyError, match=r"not valid YAML at line \d+"):
        load_study(bad)


def test_a_study_file_must_be_a_mapping(tmp_path):
    bad = tmp_path / "list.yaml"
    bad.write_text("- name: tiny\n")
    with pytest.raises(StudyError, match="mapping of study fields"):
        load_study(bad)


def test_every_problem_is_reported_at_once():
    data = with_changes(n_configs=0, resources={"cpus": 1, "gpus": 3}, colour="red")
    with pytest.raises(StudyError) as caught:
        parse_study(data)
    fields = {field for field, _ in caught.value.problems}
    assert {"n_configs", "resources.gpus", "colour"} <= fields


@pytest.mark.parametrize(
    "text,field",
    [
        ("name: tiny\ntask: gan\narms: [constant\n", "YAML"),
        (yaml.safe_dump(with_changes(n_config=3)), "n_config"),
        (yaml.safe_dump(with_changes(results="ftp://host/x")), "results"),
    ],
    ids=["invalid-yaml", "unknown-key", "uri-scheme"],
)
def test_cli_exits_2_before_starting_ray(tmp_path, text, field):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    ray_tmp = tmp_path / "ray"
    env = {**os.environ, "GAPAWARE_RAY_TMPDIR": str(ray_tmp)}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(
        [sys.executable, "-m", "sweeps", "run", str(bad)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2, done.stderr
    assert field in done.stderr
    assert not ray_tmp.exists()  # Ray never started
    assert "Traceback" not in done.stderr


def test_valid_study_round_trip_and_shorthands():
    study = parse_study(copy.deepcopy(VALID))
    assert study.arm_names == ["constant", "gap_aware"]
    assert study.arm("gap_aware").scheduler_kwargs() is None  # the paper's defaults (TrialSpec fills {})
    assert isinstance(study.search_space["lr_d"], LogUniform)
    assert study.total_configs == 2


def test_numbers_written_without_a_dot_are_accepted():
    # YAML 1.1 reads "1e-4" as a string; a learning rate written that way is still a number.
    study = parse_study(with_changes(search_space__lr_d={"type": "loguniform", "low": "1e-4", "high": "1e-2"}))
    assert study.search_space["lr_d"].low == pytest.approx(1e-4)


def test_grid_sizes_multiply_configurations():
    study = parse_study(
        with_changes(
            search_space__n_disc={"type": "grid", "values": [1, 2]},
            search_space__beta1={"type": "grid", "values": [0.0, 0.5, 0.9]},
        )
    )
    assert isinstance(study.search_space["n_disc"], Grid)
    assert study.total_configs == 2 * 2 * 3


def test_hash_ignores_execution_settings_but_not_trial_settings():
    base = study_hash(parse_study(copy.deepcopy(VALID)))
    moved = parse_study(with_changes(resources={"cpus": 2, "gpus": 0}, max_concurrent=4, results="/elsewhere"))
    assert study_hash(moved) == base
    assert study_hash(parse_study(with_changes(n_configs=3))) != base
    assert study_hash(parse_study(with_changes(fixed__steps=31))) != base


def test_dann_task_validates_against_its_own_registry():
    data = with_changes(task="dann", dataset="digits->digits_m", loss=None)
    data["search_space"] = {"lr_d": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}
    data["fixed"] = {}
    from benchmark.trial import task_module

    dann = task_module("dann")
    data["arms"] = list(dann.ARMS)
    study = parse_study(data, check_trials=False)
    assert study.task == "dann"
    with pytest.raises(StudyError, match="dataset"):
        parse_study({**data, "dataset": "digits->imagenet"}, check_trials=False)


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_studies_are_valid(path):
    study = load_study(path)
    assert study.name == path.stem  # `make report STUDY=<name>` finds results/<name>


def test_quick_study_is_the_documented_default():
    study = load_study(STUDIES / "quick.yaml")
    assert study.task == "gan" and study.dataset == "digits"
    assert {"constant", "gap_aware"} <= set(study.arm_names)
    assert 10 <= study.total_configs <= 16
    for name in ("lr_d", "lr_g"):
        space = study.search_space[name]
        assert isinstance(space, LogUniform) and math.log10(space.high / space.low) >= 3
    assert study.confirm is not None


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "celeba"])
def test_paper_scale_studies_use_fractional_gpus_and_wide_searches(name):
    study = load_study(STUDIES / f"{name}.yaml")
    assert 0 < study.resources.gpus < 1
    assert study.total_configs >= 100
    assert "beta1" in study.search_space
    for lr in ("lr_d", "lr_g"):
        space = study.search_space[lr]
        assert isinstance(space, LogUniform) and math.log10(space.high / space.low) >= 3
