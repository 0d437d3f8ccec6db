"""`snaprelabel run JOBS`: validate every row and apply the valid ones."""

from __future__ import annotations

import argparse
import sys

from .. import fastpath
from ..confirm import wants_confirmation
from ..logs import configure
from ..runner import JobSpec, run_job
from ..settings import load_settings
from ..sources import InputSpec
from . import options
from .parser import Parser


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    parser = sub.add_parser("run", help="apply a jobs file",
                            description="Validate every row of JOBS, then send the valid ones "
                                        "under the rate limit, with retries; write the report.")
    options.add_input(parser)
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
    source = input_spec(args)
    spec = JobSpec(source, args.report, args.dry_run, args.overwrite,
                   confirm=wants_confirmation(source, args.yes, args.dry_run), resume=args.resume)
    result = fastpath.run(run_job(settings, spec))
    if result.error is not None:
        print(f"snaprelabel run: error: {result.error}; the report holds every row "
              f"written before it; --resume continues the job", file=sys.stderr)
    return result.exit_code
