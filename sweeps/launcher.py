"""Run a study on Ray Tune: one Tune trial per planned (configuration, arm, seed).

The driver (this module) plans the trials, hands the unfinished ones to a
``tune.Tuner``, and records each finished trial as Tune reports it. A worker
runs :func:`benchmark.trial.run_trial` (no Ray in ``benchmark``), checkpoints
at every evaluation through ``tune.report``, and writes its row and curves
as a part file of the results directory before it returns.

- Retries: ``FailureConfig(max_failures)`` restarts a crashed trial from its
  last checkpoint; a diverged trial is a normal result, never retried.
- Resume: a new run plans the same trials and skips the finished ones; an
  unfinished trial starts from the last checkpoint an earlier run recorded.
- Ray: with no ``RAY_ADDRESS`` a private local Ray is started on 127.0.0.1
  with its files under ``/tmp/ray-gapaware-<uid>`` (``$GAPAWARE_RAY_TMPDIR``
  to choose another short path) and removed afterwards;
  with ``RAY_ADDRESS`` (inside ``ray job submit``, or ``ray://``) the driver joins that cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, TextIO

from sweeps.progress import Progress, format_duration
from sweeps.results import ChangedStudyError, StudyResults, write_part
from sweeps.sampling import TrialPlan, confirm_trials, sample_configs, search_trials, select_configs, trial_spec
from sweeps.schema import Study, load_study, study_hash
from sweeps.storage import Location

__all__ = ["StudyRun", "run_study", "ray_session", "RAY_TEMP_ROOT"]

# Where the embedded Ray keeps its session files. Short: Ray's socket paths must fit in 107 bytes.
RAY_TEMP_ENV = "GAPAWARE_RAY_TMPDIR"
RAY_TEMP_ROOT = f"/tmp/ray-gapaware-{os.getuid()}"
EXIT_OK, EXIT_TRIAL_ERRORS, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


class CannotRun(RuntimeError):
    """A valid study that cannot run where it was started (wrong RAY_ADDRESS, resources no node has)."""


# -- Ray ---------------------------------------------------------------------------------------------


def _quiet_ray_loggers() -> None:
    for name in ("ray", "ray.tune", "ray.train", "ray.air", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # "Trials did not complete: [...]": the summary of run_study says it, with the rows to look at.
    logging.getLogger("ray.tune.tune").setLevel(logging.CRITICAL)


@contextlib.contextmanager
def ray_session(*, num_cpus: int | None = None) -> Iterator[None]:
    """Ray for the duration of a study: joined if already up or named by ``RAY_ADDRESS``, else private and local."""
    address = os.environ.get("RAY_ADDRESS", "").strip()
    if address.startswith(("http://", "https://")):
        raise CannotRun(
            f"RAY_ADDRESS={address} is a job-submission (dashboard) address; run the study on that cluster with "
            f"`python -m sweeps submit STUDY --address {address}` (make submit), or unset RAY_ADDRESS to run locally"
        )
    # Tune's own result loggers would duplicate the Parquet tables; its console output is replaced by Progress.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # The legacy reporter at verbose=0 prints nothing; the new one always prints an experiment banner.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    if address:
        import ray

        _quiet_ray_loggers()
        if ray.is_initialized():
            yield
            return
        ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
        try:
            yield
        finally:
            ray.shutdown()
        return
    with _loopback_only():
        import ray

        _quiet_ray_loggers()
        if ray.is_initialized():  # e.g. a test session, or a caller that set Ray up itself
            yield
            return
        temp_root = os.environ.get(RAY_TEMP_ENV) or RAY_TEMP_ROOT
        os.makedirs(temp_root, mode=0o700, exist_ok=True)
        _remove_stale_sessions(temp_root)
        ray.init(
            address="local",
            num_cpus=num_cpus or os.cpu_count(),
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=temp_root,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
        session_dir = _session_dir()
        try:
            yield
        finally:
            ray.shutdown()
            if session_dir is not None:
                shutil.rmtree(session_dir, ignore_errors=True)
                latest = Path(temp_root, "session_latest")
                if latest.is_symlink() and not latest.exists():
                    latest.unlink(missing_ok=True)


_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """Keep an embedded Ray on 127.0.0.1 while it runs.

    Ray replaces a 127.0.0.1 node address by the machine's routable address
    (so other nodes could join), and its servers then listen there. Its
    switch for single-machine use (the default on macOS and Windows) keeps
    every server on the loopback address; Ray's child processes read it from
    the environment, this process from ``ray_constants`` (read at import).
    """
    from ray._private import ray_constants

    previous, constant = os.environ.get(_LOOPBACK_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_LOOPBACK_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = constant
        if previous is None:
            os.environ.pop(_LOOPBACK_ENV, None)
        else:
            os.environ[_LOOPBACK_ENV] = previous


def _remove_stale_sessions(temp_root: str) -> None:
    """Session folders of embedded Rays whose driver died without cleaning up (e.g. a SIGKILLed study).

    Ray names a session ``session_<date>_<time>_<micros>_<driver pid>``; a
    session whose driver process no longer exists is left over.
    """
    for entry in Path(temp_root).glob("session_*_*"):
        pid = entry.name.rsplit("_", 1)[-1]
        if entry.is_symlink() or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            pass


def _session_dir() -> str | None:
    try:
        from ray._private import worker

        return worker._global_node.get_session_dir_path()
    except Exception:  # a private API; losing the clean-up is not worth a crash
        return None


# -- the worker side ---------------------------------------------------------------------------------


def _finite(values: dict[str, Any]) -> dict[str, Any]:
    """Metrics Tune may see: numbers that are finite (a NaN would poison Tune's bookkeeping), and strings."""
    clean = {}
    for name, value in values.items():
        if isinstance(value, bool) or isinstance(value, str):
            clean[name] = value
        elif isinstance(value, (int, float)) and math.isfinite(value):
            clean[name] = value
    return clean


def run_planned_trial(config: dict[str, Any]) -> None:
    """The Tune trainable: one trial, checkpointed at each evaluation, its row written as a part file."""
    from pyarrow import fs as pafs
    from ray import tune

    from benchmark.trial import TrialSpec, run_trial

    started = time.perf_counter()
    config = config["trial"]
    spec = TrialSpec(**config["spec"])
    study_dir = Location.parse(config["study_dir"])
    checkpoint = tune.get_checkpoint()  # set when Tune retries this trial after a crash
    if checkpoint is None and config.get("resume_from"):
        candidate = tune.Checkpoint(path=config["resume_from"], filesystem=study_dir.fs)
        if study_dir.fs.get_file_info(candidate.path).type == pafs.FileType.Directory:
            checkpoint = candidate  # recorded by an earlier run of the study

    with tempfile.TemporaryDirectory(prefix=f"{spec.trial_key}-") as local:
        if checkpoint is not None:
            checkpoint.to_directory(local)

        def on_eval(step: int, metrics: dict[str, float], directory: Path | None) -> None:
            report = _finite({**metrics, "step": step})
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(directory) if directory else None)

        result = run_trial(spec, checkpoint_dir=local, on_eval=on_eval)
    write_part(study_dir.child("parts"), result.row, result.curves)
    summary = {name: result.row.get(name) for name in ("status", "val_metric", "test_metric", "steps_done", "wall_time_s")}
    summary["harness_time_s"] = time.perf_counter() - started
    summary["resumed"] = checkpoint is not None
    tune.report(_finite({**summary, "finished": True}))


# -- the driver side ---------------------------------------------------------------------------------


def _make_recorder(results: StudyResults, progress: Progress, specs: dict[str, dict[str, Any]]):
    from ray import tune

    class Recorder(tune.Callback):
        """Folds each finished trial into the tables as Tune reports it; keeps the progress display."""

        def on_trial_start(self, iteration, trials, trial, **info):
            progress.running = sum(t.status == "RUNNING" for t in trials)
            progress.trial_started(trial.config["trial"]["key"])

        def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
            results.record_checkpoint(trial.config["trial"]["key"], checkpoint.path)

        def on_trial_complete(self, iteration, trials, trial, **info):
            key = trial.config["trial"]["key"]
            row = results.absorb_part(key)
            if row is None:  # the worker returned without its part: count it as a fault
                row = self._error(key, "the trial finished but wrote no result part")
            self._finished(trial, row)

        def on_trial_error(self, iteration, trials, trial, **info):
            key = trial.config["trial"]["key"]
            row = results.absorb_part(key)  # it may have failed after writing its part
            if row is None:
                row = self._error(key, _error_summary(trial))
            self._finished(trial, row)

        def _error(self, key: str, message: str) -> dict[str, Any]:
            from benchmark.trial import TrialSpec, error_row

            row = error_row(TrialSpec(**specs[key]), message.strip())
            results.add(row)
            return row

        def _finished(self, trial, row: dict[str, Any]) -> None:
            progress.running = max(0, progress.running - 1)
            resumed = bool((trial.last_result or {}).get("resumed"))
            progress.trial_finished(row, resumed=resumed)
            _delete_checkpoints(trial)

        def on_step_end(self, iteration, trials, **info):
            progress.running = sum(t.status == "RUNNING" for t in trials)
            progress.heartbeat()

    return Recorder()


def _error_summary(trial) -> str:
    """The exception at the end of a failed trial's traceback, and where the whole traceback is."""
    try:
        text = str(trial.get_error() or "")
    except Exception:
        text = ""
    error_file = getattr(trial, "error_file", None)
    if not text.strip() and error_file:
        # Tune may hand the callback the trial before its error object is set; the file is already there.
        try:
            text = Path(error_file).read_text(errors="replace")
        except OSError:
            text = ""
    lines = [line for line in text.rstrip().splitlines() if line.strip()]
    message: list[str] = []
    for line in reversed(lines):  # the exception block ends the traceback, after the indented frames
        if line.startswith((" ", "\t")):
            break
        message.insert(0, line)
    if not message:  # no plain exception block at the end: fall back to the last line naming an error
        message = [line.strip() for line in lines if "Error" in line or "Exception" in line][-1:]
    summary = "\n".join(message)[-1500:] or "the trial failed without an error message"
    if error_file:
        summary += f"\n(full traceback: {error_file})"
    return summary


def _delete_checkpoints(trial) -> None:
    """A finished trial's checkpoints are no longer needed (they are model-sized)."""
    try:
        storage = trial.storage
        fs, trial_dir = storage.storage_filesystem, storage.trial_fs_path
        from pyarrow import fs as pafs

        for info in fs.get_file_info(pafs.FileSelector(trial_dir, allow_not_found=True)):
            if info.type == pafs.FileType.Directory and info.base_name.startswith("checkpoint_"):
                fs.delete_dir(info.path)
    except Exception:  # clean-up only; the study is complete either way
        pass


@dataclass
class StageOutcome:
    planned: int
    finished: int
    stopped: bool
    timeline: dict[str, list[float]]


def _run_stage(
    study: Study, results: StudyResults, plans: list[TrialPlan], stage: str, stream: TextIO
) -> StageOutcome:
    from ray import tune

    finished_before = results.finished_keys()
    pending = [plan for plan in plans if plan.trial_key not in finished_before]
    already = len(plans) - len(pending)
    if not pending:
        print(f"{stage}: all {len(plans)} trials already finished", file=stream, flush=True)
        return StageOutcome(len(plans), len(plans), False, {})
    print(
        f"{stage}: {len(pending)} trials to run" + (f" ({already} of {len(plans)} finished earlier)" if already else ""),
        file=stream,
        flush=True,
    )
    threads = study.resources.threads
    specs = {plan.trial_key: dataclasses.asdict(trial_spec(study, plan, threads=threads)) for plan in pending}
    configs = [
        {
            "key": plan.trial_key,
            "spec": specs[plan.trial_key],
            "study_dir": results.dir.uri,
            "resume_from": results.checkpoint_of(plan.trial_key),
        }
        for plan in pending
    ]
    progress = Progress(stage, len(plans), already, stream=stream)
    trainable = tune.with_resources(run_planned_trial, {"cpu": study.resources.cpus, "gpu": study.resources.gpus})
    tuner = tune.Tuner(
        trainable,
        param_space={"trial": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=study.max_concurrent,
            reuse_actors=True,
            trial_name_creator=lambda trial: trial.config["trial"]["key"],
            trial_dirname_creator=lambda trial: trial.config["trial"]["key"],
        ),
        run_config=tune.RunConfig(
            name=f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
            storage_path=results.tune.path,
            storage_filesystem=results.tune.fs,
            failure_config=tune.FailureConfig(max_failures=study.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[_make_recorder(results, progress, specs)],
            verbose=0,
        ),
    )
    tuner.fit()
    finished_after = results.finished_keys()
    finished = sum(plan.trial_key in finished_after for plan in plans)
    recorded = sum(results.row(plan.trial_key) is not None for plan in plans)
    return StageOutcome(len(plans), finished, recorded < len(plans), progress.timeline)


@dataclass
class StudyRun:
    """What ``run_study`` did: the exit status and where the results are."""

    exit_code: int
    results_dir: str
    counts: dict[str, dict[str, int]]
    # trial_key -> (started, finished), time.monotonic() of the driver, for trials run by this call
    timeline: dict[str, list[float]] = dataclasses.field(default_factory=dict)


def _resume_hint(study_file: str, results_override: str | None) -> str:
    extra = f" --results {results_override}" if results_override else ""
    if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR"):  # set by Ray for the driver of a submitted job
        return f"python -m sweeps submit {study_file} --address http://<head>:8265{extra}  (or make submit)"
    return f"python -m sweeps run {study_file}{extra}"


def run_study(
    study_file: str | os.PathLike,
    *,
    fresh: bool = False,
    results: str | None = None,
    stream: TextIO | None = None,
) -> StudyRun:
    """Run (or continue) a study file: search stage, then confirm stage. Raises ``StudyError`` on a bad file.

    ``results`` overrides the study's results location. Ctrl-C stops the
    running trials, keeps every finished one and returns exit code 130.
    """
    stream = stream or sys.stdout
    study_file = str(study_file)
    study = load_study(study_file)
    if results is not None:
        study = Study.model_validate({**study.model_dump(), "results": results})  # the same checks as the file
    root = Location.parse(study.results)
    store = StudyResults(root, study.name)
    configs = sample_configs(study)
    search = search_trials(study, configs)
    try:
        store.open(
            study_hash=study_hash(study),
            study_file=Path(study_file).read_bytes(),
            study_source=study_file,
            fresh=fresh,
            extra={"study": study.name, "task": study.task, "dataset": study.dataset, "search_trials": len(search)},
        )
    except ChangedStudyError as error:
        print(f"error: {error}", file=sys.stderr)
        return StudyRun(EXIT_INVALID, store.dir.uri, {})

    resume = _resume_hint(study_file, results)
    print(
        f"study {study.name}: {study.task} on {study.dataset}, {study.total_configs} configurations x "
        f"{len(study.arms)} arms ({', '.join(study.arm_names)}) x {study.seeds_per_config} seed(s) = {len(search)} "
        f"search trials{'' if study.confirm is None else ', then a confirm stage'}\nresults: {store.dir.uri}",
        file=stream,
        flush=True,
    )
    started = time.monotonic()
    stopped = False
    timeline: dict[str, list[float]] = {}
    try:
        with ray_session():
            _check_resources(study, embedded=not os.environ.get("RAY_ADDRESS"))
            outcome = _run_stage(study, store, search, "search", stream)
            timeline.update(outcome.timeline)
            stopped = outcome.stopped
            search_errors = sum(store.row(plan.trial_key)["status"] == "error" for plan in search if store.row(plan.trial_key))
            if not stopped and study.confirm is not None and search_errors:
                print(f"confirm: waits for a search without errors ({search_errors} errored); rerun to retry them", file=stream)
            elif not stopped and study.confirm is not None:
                chosen = store.manifest.get("confirm_choice")
                if chosen is None:  # chosen once, kept for every resume
                    chosen = select_configs(study, store.trials())
                    store.write_manifest(confirm_choice=chosen)
                for arm in study.arm_names:
                    if not chosen.get(arm):
                        print(f"confirm: arm {arm} has no configuration that finished without diverging", file=stream)
                plans = confirm_trials(study, configs, chosen)
                store.write_manifest(confirm_trials=len(plans))
                if plans:
                    outcome = _run_stage(study, store, plans, "confirm", stream)
                    timeline.update(outcome.timeline)
                    stopped = outcome.stopped
    except KeyboardInterrupt:
        stopped = True
    except CannotRun as error:
        print(f"error: {error}", file=sys.stderr)
        return StudyRun(EXIT_INVALID, store.dir.uri, store.status_counts())
    finally:
        store.flush()

    counts = store.status_counts()
    elapsed = format_duration(time.monotonic() - started)
    if stopped:
        store.write_manifest(complete=False)
        print(
            f"\nstopped after {elapsed}: {len(store.finished_keys())} trials finished and saved in {store.dir.uri}.\n"
            f"Resume (finished trials are kept, the others rerun) with:\n  {resume}",
            file=stream,
            flush=True,
        )
        return StudyRun(EXIT_INTERRUPTED, store.dir.uri, counts, timeline)
    errors = sum(stage.get("error", 0) for stage in counts.values())
    store.write_manifest(complete=errors == 0)
    if errors == 0:
        store.remove_tune_files()
    print(f"\nstudy {study.name} finished in {elapsed}", file=stream)
    for stage, by_status in counts.items():
        print(f"  {stage}: " + ", ".join(f"{n} {status}" for status, n in sorted(by_status.items())), file=stream)
    print(f"results: {store.dir.uri} (trials.parquet, curves.parquet, manifest.json)", file=stream)
    if errors:
        print(f"{errors} trial(s) failed with errors (see the 'error' column); rerun to retry them:\n  {resume}", file=stream)
    print(f"next: {_report_command(study, root)}", file=stream, flush=True)
    return StudyRun(EXIT_TRIAL_ERRORS if errors else EXIT_OK, store.dir.uri, counts, timeline)


def _check_resources(study: Study, *, embedded: bool) -> None:
    """Fail fast when no node of the Ray cluster could ever run one trial (Tune would wait forever)."""
    import ray

    available = ray.cluster_resources()
    missing = [
        f"{need:g} {name}" for name, need in (("CPU", study.resources.cpus), ("GPU", study.resources.gpus))
        if need > available.get(name, 0.0)
    ]
    if not missing:
        return
    message = (
        f"each trial asks for {' and '.join(missing)} (study field 'resources'), but this Ray cluster has "
        f"{available.get('CPU', 0):g} CPU and {available.get('GPU', 0):g} GPU"
    )
    if embedded:
        raise CannotRun(message + "; lower resources.cpus / set resources.gpus: 0 to run here, or submit to a cluster")
    print(f"warning: {message}; trials wait until the cluster grows", file=sys.stderr, flush=True)


def _report_command(study: Study, root: Location) -> str:
    default_root = Location.parse("results")
    if root.is_local and root.path == default_root.path:
        return f"make report STUDY={study.name}"
    return f"python -m analysis report {root.child(study.name).uri}"
