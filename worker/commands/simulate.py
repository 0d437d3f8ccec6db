"""`snaprelabel simulate`: the bundled EVS-compatible API on a local port."""

from __future__ import annotations

import argparse

from .parser import Parser

DESCRIPTION = ("Serve the snapshot API locally (all three path families), with optional faults "
               "and a server-side rate limit. Runs until SIGINT/SIGTERM.")


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    # The simulator's flags are parsed by its own parser, built when the command runs: building
    # it here would import the simulator's server into every command's start-up
    # (docs/design.md#start-up). Its arguments pass through untouched (no prefix character is '-').
    parser = sub.add_parser("simulate", help="run the bundled EVS-compatible simulator",
                            description=DESCRIPTION, add_help=False, prefix_chars="\0")
    parser.add_argument("simulator_args", nargs="*")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from ..simulator import cli

    parser = Parser(prog="snaprelabel simulate", description=DESCRIPTION)
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(args.simulator_args))
