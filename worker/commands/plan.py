"""`snaprelabel plan`: a jobs file (or an old → new table) from the live snapshot list."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys

from .. import exitcodes
from ..api.client import ListingError
from ..credentials import Credentials
from ..errors import ConfigError
from ..jobs import ONE_REGION_JOB_COLUMNS, Job, Validator
from ..jobs_file import JobsOutput, JobsWriter
from ..listing import list_snapshots
from ..logs import configure
from ..plan import (
    DiffPrinter,
    PlanCounts,
    Planned,
    Selection,
    Template,
    describe_refusal,
    parse_time,
    plan,
)
from ..settings import Settings, load_settings
from ..wiring import (
    connection_from,
    credentials_from,
    limiter_from,
    retrier_from,
    rules_from,
    stop_from,
)
from . import options
from .parser import Parser


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    parser = sub.add_parser(
        "plan", help="write a jobs file from the live snapshot list",
        description="Page through the live snapshot list, select snapshots whose current name "
                    "matches REGEX, render new values from templates (Python format syntax over "
                    "the regex's named groups and the snapshot's fields: {name}, {id}, "
                    "{volume_id}, {size}, {status}, {description}, {created_at:%Y%m%d}, ...), "
                    "check them with the rules of run, and write the jobs (with the current "
                    "values as previous_name/previous_description, for undo). Backup-owned "
                    "snapshots are never selected unless --allow-autobk-prefix. "
                    "Exit 0: every render valid; 1: some renders rejected (listed on stderr); "
                    "2: bad template, regex or setting; 4: the listing failed.")
    select = parser.add_argument_group("selection")
    select.add_argument("--match", required=True, metavar="REGEX",
                        help="select snapshots whose current name matches (a search, anchor it "
                             "with ^...$); named groups (?P<env>...) feed the templates")
    select.add_argument("--status", help="only snapshots in this status, e.g. available")
    select.add_argument("--volume-id", dest="volume_id", help="only snapshots of this volume")
    select.add_argument("--created-after", metavar="TIME",
                        help="only snapshots created at or after TIME (2024-06-01, UTC unless given)")
    select.add_argument("--created-before", metavar="TIME",
                        help="only snapshots created before TIME")
    render = parser.add_argument_group("new values")
    render.add_argument("--name", metavar="TEMPLATE", help="the new name, e.g. 'prod-{env}-{id:.8}'")
    render.add_argument("--description", metavar="TEMPLATE", help="the new description")
    out = parser.add_argument_group("output")
    shown = out.add_mutually_exclusive_group()
    shown.add_argument("--output", "-o", metavar="FILE",
                       help="write the jobs to FILE (atomically) instead of stdout")
    shown.add_argument("--diff", action="store_true",
                       help="print the first changes as old → new, and the totals, instead of jobs")
    out.add_argument("--output-format", choices=("csv", "jsonl"), default="csv",
                     help="jobs file format (default csv; jsonl can also restore an empty value)")
    options.add_rules(parser)
    options.add_api(parser)
    options.add_config(parser)
    parser.set_defaults(handler=main)


def selection_from(args: argparse.Namespace, settings: Settings) -> Selection:
    try:
        pattern = re.compile(args.match)
    except re.error as exc:
        raise ConfigError(f"--match {args.match!r}: {exc}") from None
    return Selection(
        pattern, args.status, args.volume_id,
        parse_time(args.created_after, "--created-after") if args.created_after else None,
        parse_time(args.created_before, "--created-before") if args.created_before else None,
        include_backup_owned=settings.allow_autobk_prefix,
    )


def main(args: argparse.Namespace) -> int:
    settings = load_settings(options.settings_flags(args), args.config)
    configure(settings.log_level, settings.log_format, stream=sys.stderr)  # stdout is the plan
    if args.name is None and args.description is None:
        raise ConfigError("give --name TEMPLATE, --description TEMPLATE or both")
    selection = selection_from(args, settings)
    name = Template("--name", args.name, selection.pattern) if args.name is not None else None
    description = (Template("--description", args.description, selection.pattern)
                   if args.description is not None else None)
    if not settings.project_id:
        raise ConfigError("no project: give --project-id (or OS_PROJECT_ID, SNAPRELABEL_PROJECT_ID)")
    creds = credentials_from(settings)
    return asyncio.run(_plan(args, settings, creds, selection, name, description))


async def _plan(args: argparse.Namespace, settings: Settings, creds: Credentials,
                selection: Selection, name: Template | None, description: Template | None) -> int:
    counts = PlanCounts()
    validator = Validator(rules_from(settings))
    limiter = limiter_from(settings)
    stop = stop_from(settings)
    # The same check as run's before the first request: wrong credentials are one line, exit 2.
    async with connection_from(settings, creds, limiter, stop) as conn:
        retrier = retrier_from(settings, limiter, stop, conn.auth)
        snapshots = list_snapshots(conn.default_api, retrier, settings.project_id or "",
                                   selection.server_filters())
        target = JobsOutput(args.output)
        try:
            diff = DiffPrinter(sys.stdout) if args.diff else None
            jobs = JobsWriter(target.stream, args.output_format, ONE_REGION_JOB_COLUMNS)
            async for item in plan(snapshots, selection, name, description, validator, counts):
                if isinstance(item, Planned):
                    if diff is not None:
                        diff.write(item.job)
                    else:
                        jobs.write(_columns(item.job))
                else:
                    print(f"plan: {describe_refusal(item)}", file=sys.stderr)
        except ListingError as exc:
            target.abandon()
            print(f"snaprelabel plan: error: {exc}"
                  + ("; the jobs written so far are incomplete" if not args.output and not args.diff
                     else "; nothing written"), file=sys.stderr)
            return exitcodes.FATAL
        except BaseException:
            target.abandon()
            raise
        if diff is not None:
            diff.close(counts.counts["planned"])
        else:
            jobs.finish()
        target.commit()
    if args.diff:
        print(counts.describe())
    else:
        print(f"plan: {counts.describe()}", file=sys.stderr)
    if counts.counts["listed"] and not counts.counts["matched"]:
        # Most likely a pattern written for other names: say what the names look like.
        print(f"plan: nothing matched: the names listed look like {', '.join(map(repr, counts.names))}",
              file=sys.stderr)
        return exitcodes.PROBLEMS
    return exitcodes.PROBLEMS if counts.counts["rejected"] else exitcodes.OK


def _columns(job: Job) -> dict[str, str | None]:
    return {"snapshot_id": job.snapshot_id, "project_id": job.project_id, "name": job.name,
            "description": job.description, "previous_name": job.previous_name,
            "previous_description": job.previous_description}
