"""`snaprelabel undo REPORT > undo.csv`: the jobs file that puts back what a job changed (the
rules: worker/undo.py)."""

from __future__ import annotations

import argparse
import sys

from .. import exitcodes
from ..errors import ConfigError
from ..jobs_file import format_for, write_jobs
from ..journal import JournalError, detect_format, iter_records, read_journal
from ..sources import same_file
from ..undo import Undo
from .parser import Parser


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    parser = sub.add_parser("undo", help="write the jobs file that restores a report's previous values",
                            description="Read a report and write, for every row whose change "
                                        "landed (or may have), a job that restores the previous "
                                        "name and description, ready for snaprelabel run. "
                                        "Exit 0: every change can be undone; 1: some cannot "
                                        "(listed on stderr); 2: the report is unusable.")
    parser.add_argument("report", help="a snaprelabel report (CSV or JSON Lines)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    parser.add_argument("--format", choices=("csv", "jsonl"),
                        help="output format (default: from --output's extension, else csv)")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    try:
        report_format = detect_format(args.report)
        final = read_journal(args.report, report_format).final
    except JournalError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {args.report}: {exc.strerror or exc}") from None
    if args.output and same_file(args.report, args.output):
        raise ConfigError(f"--output {args.output} is the report itself: give the undo file another name")
    undo = Undo(final)
    write_jobs(undo.jobs(iter_records(args.report, report_format)), args.output,
               format_for(args.output, args.format))
    undo.explain(args.report, sys.stderr)
    return exitcodes.PROBLEMS if undo.incomplete else exitcodes.OK
