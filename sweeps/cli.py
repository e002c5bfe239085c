"""Command line of the sweeps package.

    python -m sweeps run STUDY_FILE [--fresh] [--results DIR_OR_URI]
    python -m sweeps validate STUDY_FILE          # check it and print the configuration table
    python -m sweeps submit STUDY_FILE --address http://HEAD:8265 [--results DIR_OR_URI] [--no-wait]

Exit status: 0 done, 1 some trials failed with errors, 2 invalid study file
(or arguments), 130 interrupted (rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import sys

from sweeps.schema import StudyError, load_study

EXIT_INVALID = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sweeps", description="Run studies of the gap-aware scheduler on Ray Tune.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run or resume a study (embedded local Ray unless RAY_ADDRESS is set)")
    run.add_argument("study", help="study file, e.g. sweeps/studies/quick.yaml")
    run.add_argument("--fresh", action="store_true", help="delete this study's earlier results and start over")
    run.add_argument("--results", help="results location overriding the study's (directory, s3://... or gs://...)")

    validate = commands.add_parser("validate", help="check a study file and print its configurations")
    validate.add_argument("study")

    submit = commands.add_parser("submit", help="run a study as a Ray job on a cluster (ray job submit)")
    submit.add_argument("study")
    submit.add_argument("--address", required=True, help="the cluster's dashboard address, http://<head>:8265")
    submit.add_argument("--results", help="results location reachable from every node (shared directory or bucket URI)")
    submit.add_argument("--fresh", action="store_true", help="start the study over (deletes its earlier results)")
    submit.add_argument("--no-wait", action="store_true", help="return once the job is submitted instead of following its logs")
    submit.add_argument("--stop-wait", type=int, default=120, help="seconds `ray job stop` waits for a graceful stop (default 120)")
    return parser


def _validate(path: str) -> int:
    from sweeps.sampling import sample_configs, search_trials

    study = load_study(path)
    configs = sample_configs(study)
    search = search_trials(study, configs)
    confirm = "none" if study.confirm is None else (
        f"top {study.confirm.top_k} per arm x {study.confirm.n_seeds} seeds = up to "
        f"{study.confirm.top_k * study.confirm.n_seeds * len(study.arms)} trials"
    )
    print(f"{path}: valid study {study.name!r} ({study.task} on {study.dataset})")
    print(f"  search: {len(configs)} configurations x {len(study.arms)} arms x {study.seeds_per_config} seed(s) = {len(search)} trials")
    print(f"  confirm: {confirm}")
    print(f"  per trial: {study.resources.cpus:g} CPU, {study.resources.gpus:g} GPU; results: {study.results}/{study.name}")
    table = configs.to_string(index=False, max_rows=40, float_format=lambda v: f"{v:.4g}")
    print(table)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args.study)
        if args.command == "run":
            from sweeps.launcher import run_study

            return run_study(args.study, fresh=args.fresh, results=args.results).exit_code
        if args.command == "submit":
            from sweeps.cluster import submit_study

            return submit_study(
                args.study,
                address=args.address,
                results=args.results,
                fresh=args.fresh,
                wait=not args.no_wait,
                stop_wait_s=args.stop_wait,
            )
    except StudyError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID
    raise AssertionError(f"unhandled command {args.command}")
