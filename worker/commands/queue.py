"""`snaprelabel queue status`: how far the queue is; and the Redis flags of the queue commands."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from .. import exitcodes
from ..logs import configure
from ..settings import load_settings
from . import options
from .parser import Parser

S = argparse.SUPPRESS


def add_redis(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("queue")
    group.add_argument("--redis", dest="redis_url", default=S, metavar="URL",
                       help=options.help_for("redis_url"))
    group.add_argument("--redis-url-file", dest="redis_url_file", default=S, metavar="FILE",
                       help=options.help_for("redis_url_file"))
    group.add_argument("--stream", default=S, help=options.help_for("stream"))
    group.add_argument("--group", default=S, help=options.help_for("group"))
    group.add_argument("--redis-wait", dest="redis_wait", type=float, default=S,
                       help=options.help_for("redis_wait"))


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    parser = sub.add_parser("queue", help="inspect a job queue",
                            description="Inspect a Redis job queue.")
    commands = parser.add_subparsers(dest="queue_command", metavar="COMMAND", required=True)
    status = commands.add_parser("status", help="length, pending per consumer, dead letters, results",
                                 description="Print the queue's length (waiting and pending "
                                             "jobs), pending jobs per consumer, and the number of "
                                             "dead-letter and result entries.")
    add_redis(status)
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.add_argument("--config", metavar="FILE.toml", help="settings file")
    status.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    # Imported here: every other command's start-up would pay for Redis (docs/design.md#start-up).
    from ..queue.redis_link import RedisLink, RedisLost, RedisUnavailable
    from ..queue.service import redis_url_from
    from ..queue.status import read_status, render
    from ..queue.streams import QueueNames

    settings = load_settings(options.settings_flags(args), args.config)
    configure(settings.log_level, settings.log_format, stream=sys.stderr)  # stdout: the status only
    link = RedisLink(redis_url_from(settings), min(settings.redis_wait, 10.0))
    names = QueueNames(settings.stream, settings.group)

    async def status() -> int:
        try:
            found = await link.call("read the queue status", lambda r: read_status(r, names))
        except (RedisUnavailable, RedisLost) as exc:
            print(f"snaprelabel queue status: error: {exc}", file=sys.stderr)
            return exitcodes.FATAL
        finally:
            await link.close()
        print(json.dumps(found.as_dict()) if args.json else render(found, settings.claim_idle))
        return exitcodes.OK

    return asyncio.run(status())
