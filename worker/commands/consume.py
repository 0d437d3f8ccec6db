"""`snaprelabel consume`: work the jobs of a Redis stream as one consumer of a group."""

from __future__ import annotations

import argparse
import asyncio

from ..logs import configure
from ..settings import load_settings
from . import options
from .parser import Parser
from .queue import add_redis

S = argparse.SUPPRESS


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    parser = sub.add_parser("consume", help="apply the jobs of a Redis stream (one replica)",
                            description="Read jobs from the stream as one consumer of the group, "
                                        "send them as run does, and write each result to the "
                                        "results stream before acknowledging the job. Runs until "
                                        "SIGTERM, or with --until-empty until the queue is done.")
    add_redis(parser)
    queue = parser.add_argument_group("consumer")
    queue.add_argument("--consumer", default=None, metavar="NAME",
                       help="this consumer's name in the group (default: HOSTNAME-PID)")
    queue.add_argument("--until-empty", dest="until_empty", action="store_true",
                       help="exit 0 once no job is waiting or pending (a container job)")
    queue.add_argument("--claim-idle", dest="claim_idle", type=float, default=S,
                       help=options.help_for("claim_idle"))
    queue.add_argument("--max-deliveries", dest="max_deliveries", type=int, default=S,
                       help=options.help_for("max_deliveries"))
    queue.add_argument("--shared-rate", dest="shared_rate", type=options.a_rate, default=S,
                       help=options.help_for("shared_rate"))
    options.add_auth_failure_rail(queue)
    queue.add_argument("--allow-other-groups", dest="allow_other_groups", action="store_true",
                       help="start even if another consumer group reads the stream (each group "
                            "applies every job: by default consume refuses, exit 2)")
    queue.add_argument("--metrics-port", dest="metrics_port", type=int, default=S,
                       help=options.help_for("metrics_port"))
    options.add_rules(parser)
    options.add_api(parser)
    report = parser.add_argument_group("report")
    report.add_argument("--report", metavar="FILE",
                        help="also write each result to this local report (appended)")
    report.add_argument("--report-format", dest="report_format", default=S, choices=("csv", "jsonl"),
                        help=options.help_for("report_format"))
    report.add_argument("--fsync", action=argparse.BooleanOptionalAction, default=S,
                        help=options.help_for("fsync"))
    options.add_config(parser)
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    # Imported here: every other command's start-up would pay for Redis (docs/design.md#start-up).
    from ..queue.service import ConsumeSpec, default_consumer_name, run_consumer

    settings = load_settings(options.settings_flags(args), args.config)
    configure(settings.log_level, settings.log_format)
    spec = ConsumeSpec(args.consumer or default_consumer_name(), args.until_empty, args.report,
                       args.allow_other_groups)
    return asyncio.run(run_consumer(settings, spec))
