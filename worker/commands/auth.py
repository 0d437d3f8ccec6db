"""`snaprelabel auth check`: prove the credentials work, the way a job would before its first PUT,
and say which method and endpoint were used. With `--jobs FILE`, every (project, region) pair
the file names is proven the same way, one line each. Never prints a secret."""

from __future__ import annotations

import argparse
import asyncio
import sys

from .. import exitcodes
from ..api import roles
from ..api.keystone import KeystoneAuth
from ..api.metadata import MetadataAuth
from ..connection import Connection
from ..credentials import Credentials
from ..errors import ConfigError
from ..logs import configure
from ..pairs import named_pairs
from ..routing import Route, RouteError
from ..settings import Settings, load_settings
from ..sources import InputSpec
from ..wiring import connection_from, credentials_from, limiter_from, open_input, stop_from
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
                    "endpoint used, and what the token's roles allow. Exit 0: the credentials "
                    "work (a 'warning:' line when no role may update snapshots); 2: they do not "
                    "(one line). With --jobs FILE: every (project, region) pair the file names, "
                    "one line each (ok or FAILED); exit 2 when any fails.")
    check.add_argument("--project-id", dest="project_id", default=options.S,
                       help=options.help_for("project_id"))
    check.add_argument("--jobs", metavar="FILE",
                       help="a jobs file: check each (project, region) pair its rows name")
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
    if args.jobs:
        lines, ok = asyncio.run(_check_jobs(settings, creds, InputSpec(args.jobs)))
        for line in lines:
            print(line)
        return exitcodes.OK if ok else exitcodes.USAGE
    for line in asyncio.run(_check(settings, creds)):
        print(line)
    # Exit 0 even with a warning: a cloud's policy file may grant updates to other roles, and a
    # run's safety rail stops after the first 403s anyway (docs/auth.md#roles).
    return exitcodes.OK


async def _check(settings: Settings, creds: Credentials) -> list[str]:
    async with connection_from(settings, creds, limiter_from(settings), stop_from(settings)) as conn:
        return report(creds, conn)


async def _check_jobs(settings: Settings, creds: Credentials, spec: InputSpec) -> tuple[list[str], bool]:
    """One line per pair the file names: `ok PAIR: endpoint ...` or `FAILED PAIR: why`."""
    if spec.path == "-":
        raise ConfigError("auth check --jobs: give a file (stdin would be used up by the check)")
    with open_input(spec, settings) as rows:
        regions = rows.fields is not None and "region" in rows.fields
        named = await asyncio.to_thread(named_pairs, rows, settings.project_id)
    if not named:
        raise ConfigError(f"{spec.display_name}: no row names a project (a project_id column, or "
                          "--project-id)")
    stop = stop_from(settings)
    async with connection_from(settings, creds, limiter_from(settings), stop, regions) as conn:
        router = conn.router
        pairs = sorted({router.pair(project, region) for project, region in named})
        answers = await router.prove(pairs)
    lines = [f"method: {creds.describe()}", f"pairs: {len(pairs)} in {spec.display_name}"]
    for pair, answer in answers.items():
        if isinstance(answer, Route):
            lines.append(f"ok {pair}: {answer.api.endpoint} ({answer.origin}), "
                         f"GET {answer.checked} -> 200")
        else:
            lines.append(f"FAILED {pair}: {_reason(answer, pair)}")
    return lines, all(isinstance(a, Route) for a in answers.values())


def _reason(error: RouteError, pair: object) -> str:
    """The message without the pair it starts with (the line names it already)."""
    text = str(error)
    prefix = f"{pair}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def report(creds: Credentials, conn: Connection) -> list[str]:
    lines = [
        "credentials: ok",
        f"method: {creds.describe()}",
        f"chosen because: {creds.why}",
        f"settings from: {creds.origin}",
    ]
    warning = None
    if isinstance(conn.auth, KeystoneAuth) and conn.auth.token is not None:
        token = conn.auth.token
        skew = (f", server clock {token.clock_skew:+.0f} s from this machine's"
                if token.clock_skew is not None and abs(token.clock_skew) >= 2 else "")
        lines.append(f"token: expires {token.expires_at.isoformat()} "
                     f"(lifetime {token.lifetime:.0f} s{skew})")
        if token.project_id:
            name = f" ({token.project_name})" if token.project_name else ""
            given = " (rows without a project_id go here)" if not creds.project_id else ""
            lines.append(f"project: {token.project_id}{name}{given}")
        lines.append(f"roles: {roles.describe(token.roles)}")
        warning = roles.warning(token.roles)
    if isinstance(conn.auth, MetadataAuth) and conn.auth.key is not None:
        lines.append(f"keys: access key {conn.auth.key.access_key}, expire "
                     f"{conn.auth.key.expires_at.isoformat()} (fetched again before)")
    lines += [
        f"endpoint: {conn.endpoint} ({conn.endpoint_origin})",
        f"path family: {conn.family}",
        f"checked: GET {conn.checked} -> 200" if conn.checked else
        "checked: no snapshot list (no project id: give --project-id)",
    ]
    if warning is not None:
        lines.append(f"warning: {warning}")
    return lines
