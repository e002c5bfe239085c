"""Studies as separate processes: Ctrl-C and SIGKILL then resume, and a job on a real local Ray head.

Every process these tests start is tracked by its id and ended by its id.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

STUDY = {
    "task": "gan",
    "dataset": "digits",
    "seed": 3,
    "arms": ["constant", "gap_aware"],
    "n_configs": 4,
    "search_space": {"lr_d": {"type": "loguniform", "low": 1e-4, "high": 1e-2}},
    # Long enough that trials are still running when the signal arrives; evaluations
    # (and checkpoints) often enough that a stopped trial has one to resume from.
    "fixed": {"steps": 120, "eval_every": 20, "eval_samples": 50, "log_every": 5},
}
SEARCH_TRIALS = 4 * 2


# -- process bookkeeping -----------------------------------------------------------------------------


def _process_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, start time, command line) of every process we can read."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        table[int(entry.name)] = (int(stat[1]), stat[19], command)
    return table


def descendants(roots: set[int]) -> dict[int, str]:
    """The processes below ``roots`` (pid -> start time, to recognise them later)."""
    table = _process_table()
    found = {pid for pid in roots if pid in table}
    grew = True
    while grew:
        children = {pid for pid, (parent, _, _) in table.items() if parent in found} - found
        grew = bool(children)
        found |= children
    return {pid: table[pid][1] for pid in found}


def alive(processes: dict[int, str]) -> dict[int, str]:
    table = _process_table()
    return {pid: start for pid, start in processes.items() if pid in table and table[pid][1] == start}


def end_processes(processes: dict[int, str], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds, each process we started (by id, if still the same process)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in alive(processes):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while alive(processes) and time.monotonic() < deadline:
            time.sleep(0.2)


def wait_gone(processes: dict[int, str], timeout: float) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while alive(processes) and time.monotonic() < deadline:
        time.sleep(0.5)
    return alive(processes)


# -- a study in a subprocess -------------------------------------------------------------------------


class StudyProcess:
    """``python -m sweeps run`` in a subprocess whose output lines are collected as they come."""

    def __init__(self, study_file: Path, ray_tmp: str) -> None:
        env = {**os.environ, "GAPAWARE_RAY_TMPDIR": ray_tmp, "PYTHONUNBUFFERED": "1"}
        env.pop("RAY_ADDRESS", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sweeps", "run", str(study_file)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never saw {text!r}; output:\n{self.output}")
            time.sleep(0.2)

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code


@pytest.fixture
def study_file(tmp_path):
    def make(name: str) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, **STUDY, "results": str(tmp_path / "results")}))
        return path

    return make


@pytest.fixture
def ray_tmp():
    # Short: Ray's socket paths must fit in 107 bytes.
    folder = tempfile.mkdtemp(prefix="rg-", dir="/tmp")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def finished_trials(study_file: Path) -> pd.DataFrame:
    return pd.read_parquet(study_file.parent / "results" / study_file.stem / "trials.parquet")


def resume_to_completion(study_file: Path, ray_tmp: str) -> str:
    rerun = StudyProcess(study_file, ray_tmp)
    try:
        assert rerun.wait(timeout=240) == 0, rerun.output
    finally:
        end_processes(descendants({rerun.process.pid}))
    return rerun.output


def test_ctrl_c_stops_gracefully_and_the_rerun_completes_the_study(study_file, ray_tmp):
    path = study_file("interrupted")
    run = StudyProcess(path, ray_tmp)
    try:
        run.wait_for(f" 2/{SEARCH_TRIALS} (", timeout=180)
        started = descendants({run.process.pid})
        run.process.send_signal(signal.SIGINT)
        assert run.wait(timeout=120) == 130, run.output
    finally:
        end_processes(descendants({run.process.pid}))
    assert "python -m sweeps run" in run.output.split("stopped after", 1)[1]  # says how to resume
    # Ray's processes went down with the driver, and its session files were removed.
    assert wait_gone(started, timeout=30) == {}
    assert not list(Path(ray_tmp).glob("session_2*"))

    done_before = finished_trials(path)
    assert 2 <= len(done_before) < SEARCH_TRIALS
    output = resume_to_completion(path, ray_tmp)
    assert f"{len(done_before)} of {SEARCH_TRIALS} finished earlier" in output
    trials = finished_trials(path)
    assert len(trials) == SEARCH_TRIALS and trials["trial_key"].is_unique
    # Finished trials were kept, not rerun.
    kept = trials.set_index("trial_key").loc[done_before["trial_key"], "finished_at"]
    assert list(kept) == list(done_before["finished_at"])
    assert set(pd.read_parquet(path.parent / "results" / path.stem / "curves.parquet")["trial_key"]) == set(trials["trial_key"])


def test_sigkill_of_the_driver_loses_no_finished_trial(study_file, ray_tmp):
    path = study_file("killed")
    run = StudyProcess(path, ray_tmp)
    started: dict[int, str] = {}
    try:
        run.wait_for(f" 2/{SEARCH_TRIALS} (", timeout=180)
        started = descendants({run.process.pid})
        run.process.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
        reported = run.output.count(f"/{SEARCH_TRIALS} (")  # progress lines: trials recorded before the kill
        done_before = finished_trials(path)
        assert len(done_before) >= reported >= 2
        output = resume_to_completion(path, ray_tmp)
    finally:
        end_processes(started)  # whatever the killed driver left behind
    trials = finished_trials(path)
    assert len(trials) == SEARCH_TRIALS and trials["trial_key"].is_unique
    assert set(done_before["trial_key"]) <= set(trials["trial_key"])
    assert "finished earlier" in output


# -- a real Ray head and a submitted job -------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head on 127.0.0.1 with free ports, its own temp dir and token authentication."""
    temp_dir = tempfile.mkdtemp(prefix="rgh-", dir="/tmp")
    gcs, dashboard, agent, agent_grpc, metrics, runtime_env, client = free_ports(7)
    token = secrets.token_hex(16)
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # the job's `python` is this environment's
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keep every server on 127.0.0.1
    }
    env.pop("RAY_ADDRESS", None)
    command = [
        str(VENV_BIN / "ray"), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(gcs),
        "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard), "--include-dashboard", "true",
        "--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(agent_grpc),
        "--metrics-export-port", str(metrics), "--runtime-env-agent-port", str(runtime_env),
        "--ray-client-server-port", str(client), "--temp-dir", temp_dir, "--num-cpus", "2", "--disable-usage-stats",
    ]
    started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    head = {pid: info[1] for pid, info in _process_table().items() if temp_dir in info[2]}
    head = descendants(set(head))
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield {"address": f"http://127.0.0.1:{dashboard}", "env": env, "token": token}
    finally:
        end_processes(descendants(set(alive(head))) | head)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_submitted_job_writes_the_tables_and_honours_token_auth(ray_head, tmp_path):
    study = {**STUDY, "name": "job", "n_configs": 2, "fixed": {"steps": 30, "eval_every": 15, "eval_samples": 50}}
    study_path = REPO / f".pytest-job-{os.getpid()}.yaml"  # inside the uploaded working directory
    study_path.write_text(yaml.safe_dump({**study, "results": "results"}))
    results = tmp_path / "shared"
    try:
        submit = [sys.executable, "-m", "sweeps", "submit", study_path.name, "--address", ray_head["address"], "--results", str(results)]
        # Without the token the cluster refuses the job.
        no_token = {k: v for k, v in ray_head["env"].items() if k != "RAY_AUTH_TOKEN"}
        no_token["HOME"] = str(tmp_path)  # no token file there either
        refused = subprocess.run(submit, cwd=REPO, env=no_token, capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0
        assert not (results / "job").exists()

        done = subprocess.run(submit, cwd=REPO, env=ray_head["env"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "study job finished" in done.stdout
    finally:
        study_path.unlink(missing_ok=True)
    trials = pd.read_parquet(results / "job" / "trials.parquet")
    assert len(trials) == 2 * 2 and trials["trial_key"].is_unique
    assert set(pd.read_parquet(results / "job" / "curves.parquet")["trial_key"]) == set(trials["trial_key"])
    assert (results / "job" / "manifest.json").exists()


def test_submit_refuses_a_results_path_the_job_cannot_share(capsys):
    from sweeps.cli import main as cli_main

    # quick.yaml writes to the relative "results": inside the job's temporary copy of this directory.
    path = REPO / "sweeps" / "studies" / "quick.yaml"
    assert cli_main(["submit", str(path), "--address", "http://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "results" in err and "relative" in err
