"""The `snaprelabel` command: argument parsing only; each command lives in worker.commands."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from . import __version__, exitcodes
from .commands import COMMANDS
from .commands.parser import Parser
from .errors import ConfigError
from .redaction import redact_output


def build_parser() -> Parser:
    parser = Parser(
        prog="snaprelabel",
        description="Relabel disk snapshots in bulk on Huawei Cloud EVS and OpenStack Cinder.",
    )
    parser.add_argument("--version", action="version", version=f"snaprelabel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in COMMANDS:
        module.register(sub)
    return parser


def hold_standard_fds() -> None:
    """Put /dev/null on a closed fd 0, 1 or 2 (`<&-`): the next socket or file would take its
    number, and libuv (uvloop, in the image) aborts the process when it closes a fd under 3.
    sys.stdin stays None, so a closed stdin is still reported as such."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            held = os.open(os.devnull, os.O_RDWR)
            if held != fd:
                os.dup2(held, fd)
                os.close(held)


def main(argv: Sequence[str] | None = None) -> int:
    hold_standard_fds()
    redact_output()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return exitcodes.USAGE
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        print(f"snaprelabel {args.command}: error: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    except KeyboardInterrupt:
        return exitcodes.SIGINT
    except BrokenPipeError:
        return exitcodes.PROBLEMS


if __name__ == "__main__":
    sys.exit(main())
