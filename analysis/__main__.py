"""Command line: `python -m analysis report RESULTS_DIR_OR_URI`.

RESULTS_DIR_OR_URI is one study directory (`results/<study>`, holding
trials.parquet) or a root holding several; then every study gets its report
and `<root>/report/` gets the cross-study figure.  Exit status 2 when a
results table is missing or breaks the contract.
"""

from __future__ import annotations

import argparse
import sys

from .load import ResultsTableError
from .report import build_reports, format_headline


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser("report", help="build the HTML/Markdown report of one study or of every study in a root")
    report.add_argument("path", metavar="RESULTS_DIR_OR_URI",
                        help="results/<study>, a results root, or an s3:// / gs:// URI")
    report.add_argument("--seed", type=int, default=0, help="seed of the bootstrap Generator (default 0)")
    report.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    report.add_argument("--quiet", action="store_true", help="do not print the headline tables")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.resamples < 0:
        print("error: --resamples must be ≥ 0", file=sys.stderr)
        return 2
    failed = []

    def on_study(analysis, files):
        if not args.quiet:
            print(format_headline(analysis))
            for note in analysis.notes:
                print(f"  note: {note}")
        print(f"report: {files.index_html}\n")

    def on_error(study_dir, exc):
        failed.append(study_dir)
        print(f"error: {exc}", file=sys.stderr)

    try:
        analyses, cross = build_reports(args.path, seed=args.seed, n_resamples=args.resamples,
                                        on_study=on_study, on_error=on_error)
    except ResultsTableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if cross:
        print(f"cross-study report: {cross}")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
