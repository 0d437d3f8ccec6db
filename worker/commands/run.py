"""`snaprelabel run JOBS`: validate every row and apply the valid ones."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .. import exitcodes, fastpath
from ..confirm import wants_confirmation
from ..errors import ConfigError
from ..html_report import write_html
from ..journal import JournalError
from ..logs import configure
from ..rerun import RETRY_OUTCOMES, Selection, link_retry, retry_paths, write_retry_jobs
from ..runner import JobSpec, run_job
from ..settings import load_settings
from ..sources import InputSpec, same_file
from ..summary import summarise
from . import options
from .parser import Parser


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    parser = sub.add_parser("run", help="apply a jobs file",
                            description="Validate every row of JOBS, then send the valid ones "
                                        "under the rate limit, with retries; write the report.")
    options.add_input(parser, optional=True)
    parser.add_argument("--dry-run", action="store_true",
                        help="validate and report what would be sent; send nothing")
    parser.add_argument("--yes", "-y", action="store_true",
                        help="do not ask for confirmation (asked only on a terminal, for a job "
                             "of more than 1,000 rows)")
    options.add_rules(parser)
    options.add_api(parser)
    options.add_safety(parser)
    options.add_report(parser)
    parser.add_argument("--resume", action="store_true",
                        help="continue the report of an earlier run of this jobs file: rows it "
                             "already answers are skipped, the rest are appended")
    parser.add_argument("--skip-unchanged", dest="skip_unchanged", action="store_true",
                        default=options.S, help=options.help_for("skip_unchanged"))
    parser.add_argument("--retry-from", metavar="REPORT",
                        help="instead of JOBS: run again the failed, interrupted and not-attempted "
                             "rows of this report (their jobs file and the new report are written "
                             "beside it, and both manifests name each other)")
    parser.add_argument("--html", metavar="FILE",
                        help="at the end, also write the job's self-contained HTML report (what "
                             "`summary REPORT --html FILE` writes)")
    options.add_config(parser)
    parser.set_defaults(handler=main)


def input_spec(args: argparse.Namespace) -> InputSpec:
    columns = list(args.column)
    for target, header in (("previous_name", getattr(args, "previous_name_column", None)),
                           ("previous_description", getattr(args, "previous_description_column", None))):
        if header:
            columns.append(f"{target}={header}")
    return InputSpec(args.input, args.format, tuple(columns), args.delimiter, args.sheet)


def main(args: argparse.Namespace) -> int:
    settings = load_settings(options.settings_flags(args), args.config)
    configure(settings.log_level, settings.log_format)
    links: dict[str, Any] = {}
    if args.retry_from:
        if args.input or args.resume:
            raise ConfigError("--retry-from takes the jobs from the report: give no JOBS file and no --resume")
        args.input, report = retry_paths(args.retry_from, settings.report_format)
        args.report = args.report or report
        count = write_retry_jobs(args.retry_from, Selection(frozenset(RETRY_OUTCOMES)), args.input)
        print(f"snaprelabel run: {count} rows of {args.retry_from} to run again, from {args.input}",
              file=sys.stderr)
        if count == 0:
            os.unlink(args.input)
            return exitcodes.OK
        links = {"retry_of": {"report": args.retry_from, "jobs": args.input}}
    elif not args.input:
        raise ConfigError("give a JOBS file (or - for stdin), or --retry-from REPORT")
    source = input_spec(args)
    if args.html and (same_file(args.html, source.path) or (args.report and same_file(args.html, args.report))):
        raise ConfigError(f"--html {args.html} is the jobs file or the report: give it another name")
    spec = JobSpec(source, args.report, args.dry_run, args.overwrite,
                   confirm=wants_confirmation(source, args.yes, args.dry_run), resume=args.resume,
                   links=links)
    result = fastpath.run(run_job(settings, spec))
    if args.retry_from and not args.dry_run and os.path.exists(result.report):
        link_retry(args.retry_from, result.report, args.input)
    if result.error is not None:
        print(f"snaprelabel run: error: {result.error}; the report holds every row "
              f"written before it; --resume continues the job", file=sys.stderr)
    if args.html:
        _write_html(result.report, args.html)
    return result.exit_code


def _write_html(report: str, path: str) -> None:
    """The job's HTML report; failing to write it does not change how the job ended."""
    try:
        write_html(summarise(report), path)
    except (OSError, JournalError) as exc:
        print(f"snaprelabel run: cannot write the HTML report {path}: {getattr(exc, 'strerror', None) or exc}",
              file=sys.stderr)
