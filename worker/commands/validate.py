"""`snaprelabel validate JOBS`: every problem of a jobs file, offline; nothing is sent."""

from __future__ import annotations

import argparse
import sys
from collections import Counter

from .. import exitcodes
from ..jobs import Job, Rejection, Validator
from ..settings import load_settings
from ..wiring import open_input, rules_from
from . import options
from .parser import Parser
from .run import input_spec


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    parser = sub.add_parser("validate", help="check a jobs file offline",
                            description="Check every row of JOBS with the same rules as run, "
                                        "print each problem as FILE:LINE: FIELD: REASON. "
                                        "Sends nothing. Exit 0: all valid; 1: some rows invalid; "
                                        "2: the file cannot be used at all.")
    options.add_input(parser)
    options.add_rules(parser)
    parser.add_argument("--config", metavar="FILE.toml", help="settings file")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    settings = load_settings(options.settings_flags(args), args.config)
    spec = input_spec(args)
    validator = Validator(rules_from(settings))
    counts: Counter[str] = Counter()
    with open_input(spec, settings) as rows:
        for row in rows:
            item = row if isinstance(row, Rejection) else validator.validate(row)
            if isinstance(item, Job):
                counts["valid"] += 1
                continue
            counts["rejected"] += 1
            for problem in item.problems or ():
                where = f"{problem.field}: " if problem.field else ""
                print(f"{spec.display_name}:{item.line}: {where}{problem.message} [{problem.code}]")
    total = counts["valid"] + counts["rejected"]
    print(f"{total} rows: {counts['valid']} valid, {counts['rejected']} rejected", file=sys.stderr)
    return exitcodes.PROBLEMS if counts["rejected"] else exitcodes.OK
