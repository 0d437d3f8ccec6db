"""`snaprelabel enqueue JOBS`: validate a jobs file and queue its valid rows in a Redis stream."""

from __future__ import annotations

import argparse
import asyncio
import os

from ..errors import ConfigError
from ..jobs import Validator
from ..journal import JournalError, open_report
from ..logs import configure
from ..redaction import SECRETS
from ..runner import default_report_path
from ..settings import load_settings
from ..sources import same_file
from ..wiring import open_input, rules_from
from . import options
from .parser import Parser
from .queue import add_redis
from .run import input_spec


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    parser = sub.add_parser("enqueue", help="queue a jobs file in a Redis stream",
                            description="Validate every row of JOBS with the rules of run (rejected "
                                        "rows go to the report), then add the valid jobs to the "
                                        "stream for `snaprelabel consume`. Exit 0: all queued; "
                                        "1: some rows rejected; 2: unusable input or settings; "
                                        "4: Redis unreachable.")
    options.add_input(parser)
    options.add_rules(parser)
    add_redis(parser)
    parser.add_argument("--maxlen", type=int, metavar="N",
                        help="never let the stream hold more than N jobs: wait for consumers "
                             "to make room")
    group = parser.add_argument_group("report")
    group.add_argument("--report", metavar="FILE",
                       help="report of the rejected rows (default: snaprelabel-report-<UTC time>.csv)")
    group.add_argument("--report-format", dest="report_format", default=options.S,
                       choices=("csv", "jsonl"), help=options.help_for("report_format"))
    group.add_argument("--overwrite", action="store_true", help="replace an existing report file")
    options.add_config(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    # Imported here: every other command's start-up would pay for Redis (docs/design.md#start-up).
    from ..queue.enqueue import enqueue_file
    from ..queue.redis_link import RedisLink
    from ..queue.service import redis_url_from
    from ..queue.streams import QueueNames

    settings = load_settings(options.settings_flags(args), args.config)
    configure(settings.log_level, settings.log_format)
    if args.maxlen is not None and args.maxlen < 1:
        raise ConfigError("--maxlen must be at least 1")
    url = redis_url_from(settings)
    spec = input_spec(args)
    report_path = args.report or default_report_path(settings.report_format)
    if same_file(spec.path, report_path):
        raise ConfigError(f"{report_path} is the jobs file itself: give the report another name")
    if os.path.exists(report_path) and not args.overwrite:
        raise ConfigError(f"report {report_path} already exists: pass --overwrite to replace it")
    with open_input(spec, settings) as rows:
        try:  # locked before it is truncated, as run's report
            report, lock = open_report(report_path, settings.report_format, SECRETS.redact,
                                       overwrite=args.overwrite)
        except JournalError as exc:
            raise ConfigError(str(exc)) from None
        except OSError as exc:
            raise ConfigError(f"cannot write the report {report_path}: {exc.strerror or exc}") from None
        try:
            names = QueueNames(settings.stream, settings.group)
            return asyncio.run(enqueue_file(
                RedisLink(url, settings.redis_wait), names, rows, Validator(rules_from(settings)),
                spec.display_name, report, args.maxlen))
        finally:
            report.close()
            os.close(lock)
