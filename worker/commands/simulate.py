"""`snaprelabel simulate`: the bundled EVS-compatible API on a local port."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ..simulator import cli

    parser = sub.add_parser("simulate", help="run the bundled EVS-compatible simulator",
                            description="Serve the snapshot API locally (all three path "
                                        "families), with optional faults and a server-side "
                                        "rate limit. Runs until SIGINT/SIGTERM.")
    cli.add_arguments(parser)
    parser.set_defaults(handler=cli.run)
