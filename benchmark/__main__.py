"""Command line: one trial in this process, no Ray.

    python -m benchmark trial --task gan --dataset digits --arm gap_aware \\
        --set lr_d=1e-3 lr_g=2e-4 steps=1500 seed=0 --out row.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from benchmark.trial import TASKS, TrialSpec, run_trial, task_module


def _hyperparameter_help() -> str:
    lines = ["hyperparameters (--set NAME=VALUE; also seed=N):"]
    for name in TASKS:
        task = task_module(name)
        lines.append(f"  task {name} (arms: {', '.join(task.ARMS)}; losses: {', '.join(task.LOSSES)}):")
        for hp_name, hp in task.HYPERPARAMETERS.items():
            lines.append(f"    {hp_name:<14} default {hp.default!r:<10} {hp.help}")
        for opt_name, default in task.OPTIONS.items():
            lines.append(f"    --option {opt_name}=...  default {default!r}")
    lines.append("scheduler settings (--scheduler NAME=VALUE, gap_aware arm): ema_decay, h_min, f_max, x_min, x_max")
    return "\n".join(lines)


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"error: {flag} expects NAME=VALUE, got {item!r}")
        pairs[name.strip()] = value.strip()
    return pairs


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark", description="Run one adversarial-net trial.")
    commands = parser.add_subparsers(dest="command", required=True)
    trial = commands.add_parser(
        "trial",
        help="run one trial and write its result row",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_hyperparameter_help(),
    )
    trial.add_argument("--task", default="gan", choices=sorted(TASKS))
    trial.add_argument("--dataset", default="digits")
    trial.add_argument("--arm", default="gap_aware")
    trial.add_argument("--loss", default=None, help="adversarial loss (default: the task's)")
    trial.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE", help="hyperparameters and seed")
    trial.add_argument("--scheduler", nargs="*", default=[], metavar="NAME=VALUE")
    trial.add_argument("--option", nargs="*", default=[], metavar="NAME=VALUE")
    trial.add_argument("--data-root", default=None, help="data directory (default: $BENCHMARK_DATA_DIR)")
    trial.add_argument("--download", action="store_true", help="let torchvision download missing datasets")
    trial.add_argument("--device", default="auto")
    trial.add_argument("--threads", type=int, default=1, help="torch threads (default 1: fastest for the small nets)")
    trial.add_argument("--out", type=Path, default=None, help="write the row as JSON (curves beside it as Parquet)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    hp = _pairs(args.set, "--set")  # strings: resolve() casts each to its hyperparameter's type
    seed = int(hp.pop("seed", 0))
    scheduler = {k: float(v) for k, v in _pairs(args.scheduler, "--scheduler").items()} or None
    spec = TrialSpec(
        task=args.task,
        dataset=args.dataset,
        arm=args.arm,
        loss=args.loss,
        hp=hp,
        seed=seed,
        scheduler=scheduler,
        options=_pairs(args.option, "--option"),
        data_root=args.data_root,
        download=args.download,
        device=args.device,
        threads=args.threads,
    )
    try:
        result = run_trial(spec)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    row = result.row
    reason = f" ({row['divergence_reason']} at step {row['divergence_step']})" if row["diverged"] else ""
    print(
        f"{row['trial_key']} {row['task']}/{row['dataset']} status={row['status']}{reason} "
        f"val_metric={row['val_metric']:.4g} test_{row['metric_name']}={row['test_metric']:.4g} "
        f"steps={row['steps_done']} wall={row['wall_time_s']:.1f}s"
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({k: _json_safe(v) for k, v in row.items()}, indent=2) + "\n")
        result.curves.to_parquet(args.out.with_suffix(".curves.parquet"), index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
