"""`snaprelabel run JOBS`: validate every row and apply the valid ones."""

from __future__ import annotations

import argparse

from .. import fastpath
from ..logs import configure
from ..runner import JobSpec, run_job
from ..settings import load_settings
from ..sources import InputSpec
from . import options


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="apply a jobs file",
                            description="Validate every row of JOBS, then send the valid ones "
                                        "under the rate limit, with retries; write the report.")
    options.add_input(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="validate and report what would be sent; send nothing")
    options.add_rules(parser)
    options.add_api(parser)
    options.add_report(parser)
    options.add_config(parser)
    parser.set_defaults(handler=main)


def input_spec(args: argparse.Namespace) -> InputSpec:
    return InputSpec(args.input, args.format, tuple(args.column), args.delimiter)


def main(args: argparse.Namespace) -> int:
    settings = load_settings(options.settings_flags(args), args.config)
    configure(settings.log_level, settings.log_format)
    spec = JobSpec(input_spec(args), args.report, args.dry_run, args.overwrite)
    return fastpath.run(run_job(settings, spec)).exit_code
