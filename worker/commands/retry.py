"""`snaprelabel retry REPORT -o retry.csv`: the jobs file of the rows a job did not finish (the
rules: worker/rerun.py), ready for `snaprelabel run`."""

from __future__ import annotations

import argparse
import shlex
import sys

from .. import exitcodes
from ..errors import ConfigError
from ..jobs_file import format_for, write_jobs
from ..rerun import CHOICES, RETRY_OUTCOMES, Selection, read_retry_jobs
from ..results import Outcome
from ..sources import same_file
from .parser import Parser


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    parser = sub.add_parser("retry", help="write the jobs file of a report's failed and unfinished rows",
                            description="Read a report and write the jobs of the rows whose answer "
                                        "is failed, interrupted or not_attempted (or those chosen "
                                        "with --outcome and --error-code), with their original "
                                        "targets, ready for snaprelabel run. Exit 0, or 2 when the "
                                        "report is unusable or its input changed since.")
    parser.add_argument("report", help="a snaprelabel report (CSV or JSON Lines)")
    parser.add_argument("--outcome", default=",".join(RETRY_OUTCOMES), type=_outcomes,
                        help=f"comma-separated outcomes to retry, of {', '.join(CHOICES)} "
                             "(default: failed,interrupted,not_attempted)")
    parser.add_argument("--error-code", dest="error_codes", metavar="CODE", action="append", default=[],
                        help="only rows with this error code or HTTP status (repeatable)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    parser.add_argument("--format", choices=("csv", "jsonl"),
                        help="output format (default: from --output's extension, else csv)")
    parser.set_defaults(handler=main)


def _outcomes(text: str) -> frozenset[Outcome]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    wrong = [name for name in names if name not in CHOICES]
    if wrong or not names:
        raise argparse.ArgumentTypeError(f"{', '.join(wrong) or text!r} is not one of {', '.join(CHOICES)}")
    return frozenset(Outcome(name) for name in names)


def main(args: argparse.Namespace) -> int:
    if args.output and same_file(args.report, args.output):
        raise ConfigError(f"--output {args.output} is the report itself: give the jobs file another name")
    selection = Selection(args.outcome, frozenset(args.error_codes))
    jobs, note, _ = read_retry_jobs(args.report, selection)
    write_jobs(jobs, args.output, format_for(args.output, args.format))
    if note:
        print(note, file=sys.stderr)
    counts = ", ".join(f"{outcome} {n}" for outcome, n in sorted(selection.by_outcome.items())) or "none"
    print(f"retry: {len(jobs)} rows to run again from {args.report} ({counts})", file=sys.stderr)
    if jobs and args.output:
        print(f"retry: next: snaprelabel run {shlex.quote(args.output)} --report REPORT", file=sys.stderr)
    return exitcodes.OK
