"""Run a study on a Ray cluster as a job: ``make submit`` → ``python -m sweeps submit`` → ``ray job submit``.

The job's driver is ``python -m sweeps run`` on the head node, in an uploaded
copy of this directory, so:

- the results location must be reachable from every node and outlive the
  job's copy: an absolute shared path or an ``s3://``/``gs://`` URI;
- ``ray job stop`` must let the driver stop like a Ctrl-C: the job's runtime
  env sets ``RAY_JOB_STOP_SIGNAL=SIGINT`` and a wait (``RAY_JOB_STOP_WAIT_TIME_S``)
  long enough to record what finished, so submitting the same study again resumes it;
- token authentication (``RAY_AUTH_MODE=token`` with ``RAY_AUTH_TOKEN`` or a
  token file) is read by the ``ray`` command from this process's environment,
  which it inherits unchanged. The token is never put into the job's runtime
  env, where anyone who can list jobs could read it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sweeps.schema import StudyError, load_study
from sweeps.storage import check_location

__all__ = ["submit_command", "submit_study", "JOB_EXCLUDES"]

# Not uploaded with the working directory: environments, results, caches, VCS data.
JOB_EXCLUDES = [".venv", ".git", "results", "**/__pycache__", ".pytest_cache", "*.egg-info", "*.parquet", "*.pt"]
# Environment variables of the submitting shell that the job should see (paths to shared data and caches).
PASSED_ENV = ("BENCHMARK_DATA_DIR", "BENCHMARK_CACHE_DIR")


def _ray_cli() -> str:
    beside_python = Path(sys.executable).with_name("ray")
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("ray")
    if found is None:
        raise FileNotFoundError("the `ray` command was not found; install the project (make venv) first")
    return found


def submit_command(
    study_file: str,
    *,
    address: str,
    results: str,
    fresh: bool = False,
    wait: bool = True,
    stop_wait_s: int = 120,
    submission_id: str | None = None,
    working_dir: str | os.PathLike = ".",
    python: str = "python",
) -> list[str]:
    """The ``ray job submit`` command line for a study (validated by the caller)."""
    working_dir = Path(working_dir).resolve()
    try:
        relative_study = Path(study_file).resolve().relative_to(working_dir)
    except ValueError:
        raise StudyError(
            [("", f"the study file must lie inside the uploaded directory {working_dir} (it is {study_file})")], study_file
        ) from None
    env_vars = {
        "RAY_JOB_STOP_SIGNAL": "SIGINT",
        "RAY_JOB_STOP_WAIT_TIME_S": str(int(stop_wait_s)),
        **{name: os.environ[name] for name in PASSED_ENV if os.environ.get(name)},
    }
    runtime_env = {"env_vars": env_vars, "excludes": JOB_EXCLUDES}
    entrypoint = [python, "-m", "sweeps", "run", relative_study.as_posix(), "--results", results]
    if fresh:
        entrypoint.append("--fresh")
    command = [
        _ray_cli(), "job", "submit",
        "--address", address,
        "--working-dir", str(working_dir),
        "--runtime-env-json", json.dumps(runtime_env),
    ]
    if submission_id:
        command += ["--submission-id", submission_id]
    if not wait:
        command.append("--no-wait")
    return command + ["--", *entrypoint]


def _shared_results(location: str) -> str:
    """The results location as the job must see it: a URI, or an absolute path (relative ones would land in the job's copy)."""
    check_location(location)
    if "://" in location:
        return location
    if not os.path.isabs(os.path.expanduser(location)):
        raise StudyError(
            [("results", f"{location!r} is relative: the job would write into its temporary copy of this directory. "
                         "Give --results an absolute path on storage shared by the cluster, or an s3:// / gs:// URI")]
        )
    return os.path.expanduser(location)


def submit_study(
    study_file: str,
    *,
    address: str,
    results: str | None = None,
    fresh: bool = False,
    wait: bool = True,
    stop_wait_s: int = 120,
    python: str = "python",
) -> int:
    """Validate the study here, then submit it; the exit status of ``ray job submit`` (2 on an invalid study)."""
    study = load_study(study_file)  # a bad file never reaches the cluster
    location = _shared_results(results or study.results)
    submission_id = f"{study.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    command = submit_command(
        study_file, address=address, results=location, fresh=fresh, wait=wait,
        stop_wait_s=stop_wait_s, submission_id=submission_id, python=python,
    )
    print(f"submitting study {study.name} as job {submission_id} to {address}; results: {location}/{study.name}", flush=True)
    print(
        f"stop it gracefully with `ray job stop --address {address} {submission_id}`; "
        "submit the same study again to resume",
        flush=True,
    )
    print("$ " + shlex.join(command), flush=True)
    return subprocess.run(command, env=os.environ.copy()).returncode
