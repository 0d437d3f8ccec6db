"""`snaprelabel auth check`: prove the credentials work, the way a job would before its first PUT,
and say which method and endpoint were used. Never prints a secret."""

from __future__ import annotations

import argparse
import asyncio
import sys

from .. import exitcodes
from ..api.keystone import KeystoneAuth
from ..api.metadata import MetadataAuth
from ..connection import Connection
from ..credentials import Credentials
from ..logs import configure
from ..settings import Settings, load_settings
from ..wiring import connection_from, credentials_from, limiter_from, stop_from
from . import options
from .parser import Parser


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    parser = sub.add_parser("auth", help="check credentials",
                            description="Credentials: see `snaprelabel auth check --help`.")
    actions = parser.add_subparsers(dest="auth_action", metavar="ACTION",
                                    parser_class=type(parser))
    check = actions.add_parser(
        "check", help="prove the credentials work",
        description="Authenticate as a job would (get a token, or sign a request), find the "
                    "endpoint, and GET one page of the snapshot list; print the method and "
                    "endpoint used. Exit 0: the credentials work; 2: they do not (one line).")
    check.add_argument("--project-id", dest="project_id", default=options.S,
                       help=options.help_for("project_id"))
    options.add_api(check)
    options.add_config(check)
    check.set_defaults(handler=main)

    def usage(_: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return exitcodes.USAGE

    parser.set_defaults(handler=usage)


def main(args: argparse.Namespace) -> int:
    settings = load_settings(options.settings_flags(args), args.config)
    configure(settings.log_level, settings.log_format, stream=sys.stderr)
    creds = credentials_from(settings)
    for line in asyncio.run(_check(settings, creds)):
        print(line)
    return exitcodes.OK


async def _check(settings: Settings, creds: Credentials) -> list[str]:
    async with connection_from(settings, creds, limiter_from(settings), stop_from(settings)) as conn:
        return report(creds, conn)


def report(creds: Credentials, conn: Connection) -> list[str]:
    lines = [
        "credentials: ok",
        f"method: {creds.describe()}",
        f"chosen because: {creds.why}",
        f"settings from: {creds.origin}",
    ]
    if isinstance(conn.auth, KeystoneAuth) and conn.auth.token is not None:
        lines.append(f"token: expires {conn.auth.token.expires_at.isoformat()}")
    if isinstance(conn.auth, MetadataAuth) and conn.auth.key is not None:
        lines.append(f"keys: access key {conn.auth.key.access_key}, expire "
                     f"{conn.auth.key.expires_at.isoformat()} (fetched again before)")
    lines += [
        f"endpoint: {conn.endpoint} ({conn.endpoint_origin})",
        f"path family: {conn.family}",
        f"checked: GET {conn.checked} -> 200" if conn.checked else
        "checked: no snapshot list (no project id: give --project-id)",
    ]
    return lines
