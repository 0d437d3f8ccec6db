"""`run`: one relabel job from a jobs file, from settings to exit code. Checks everything that can
be checked before a request is sent (credentials, report, resume), keeps the report and its
manifest, and runs the shared part (worker/execution.py) with the parts of worker/wiring.py."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .api import roles
from .api.client import ListingError
from .api.keystone import KeystoneAuth
from .confirm import JobFacts, confirm
from .connection import Connection
from .credentials import Credentials
from .engine import Sink, Summary
from .errors import ConfigError
from .execution import execute, exit_code
from .journal import Journal, JournalError, check_fingerprint, lock_report, open_report, read_journal
from .live import LiveState
from .logs import log
from .manifest import Manifest, file_digest, job_figures, manifest_path, read_manifest
from .pairs import PairCounts, named_pairs
from .quota import as_written, rate_text
from .rate import Limiter
from .redaction import SECRETS
from .report import ReportWriter
from .results import Outcome
from .routing import Pair, RouteError
from .settings import Settings
from .sources import InputSpec, Rows, count_rows, same_file
from .stop import Stop
from .wiring import (
    connection_from,
    credentials_from,
    engine_from,
    limiter_from,
    live_state_from,
    open_input,
    project_from_login,
    relabeler_from,
    require_project,
    rules_from,
    safety_from,
    stop_from,
    with_login_project,
)


@dataclass(frozen=True)
class JobSpec:
    input: InputSpec
    report: str | None = None  # None: a new timestamped file in the working directory
    dry_run: bool = False
    overwrite: bool = False
    confirm: bool = False  # ask on the terminal before a job of more than 1,000 rows
    resume: bool = False  # continue an existing report: skip the rows it already answers
    links: dict[str, Any] = dataclasses.field(default_factory=dict)  # for the manifest: the report retried


@dataclass
class JobResult:
    summary: Summary
    exit_code: int
    report: str
    error: str | None = None  # why the job could not go on (exit code 4), in one line


def default_report_path(fmt: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"snaprelabel-report-{stamp}.{fmt}"


async def run_job(settings: Settings, spec: JobSpec, extra_sinks: tuple[Sink, ...] = (),
                  on_terminal: bool | None = None) -> JobResult:
    """Raises ConfigError for anything that stops the job before a request is sent."""
    if on_terminal is None:
        on_terminal = sys.stderr.isatty()
    creds = None if spec.dry_run else credentials_from(settings)
    if spec.resume and (spec.overwrite or spec.dry_run):
        raise ConfigError("--resume cannot be combined with --overwrite or --dry-run")
    if spec.resume and spec.input.path == "-":
        raise ConfigError("--resume needs a jobs file: stdin cannot be fingerprinted, so a resumed "
                          "run could not prove that it reads the same rows")
    if settings.skip_unchanged and spec.dry_run:
        raise ConfigError("--skip-unchanged reads the live state: it cannot be combined with --dry-run")
    report_path = spec.report or default_report_path(settings.report_format)
    for output in (report_path, manifest_path(report_path)):
        if same_file(spec.input.path, output):  # --overwrite would truncate the input as it is read
            raise ConfigError(f"{output} is the jobs file {spec.input.display_name} itself: "
                              "give the report another name")
    existing = os.path.exists(report_path)
    if existing and not (spec.overwrite or spec.resume):
        raise ConfigError(f"report {report_path} already exists: pass --overwrite to replace it, "
                          "or --resume to continue it")
    try:
        digest = await asyncio.to_thread(file_digest, spec.input.path)
    except OSError as exc:
        raise ConfigError(f"cannot read {spec.input.display_name}: {exc.strerror or exc}") from None

    limiter = limiter_from(settings)
    stop = stop_from(settings)
    later = project_from_login(creds) and not settings.project_id
    with open_input(spec.input, settings, later) as rows, contextlib.ExitStack() as held:
        # Lock before reading or truncating a report, so a run never clobbers a running one.
        lock = _lock(report_path) if existing else None
        if lock is not None:
            held.callback(os.close, lock)
        journal = _journal(report_path, settings, spec, digest) if spec.resume and existing else None
        # The credentials are proven before the report exists: a refused one leaves nothing.
        regions = rows.fields is not None and "region" in rows.fields
        async with _connected(settings, creds, limiter, stop, regions) as conn:
            # A name-scoped login (a devstack openrc) learns its project id from the token.
            settings = with_login_project(settings, conn)
            if later:
                require_project(spec.input, rows, settings.project_id)
            if conn is not None:
                _warn_if_read_only(conn)
            pairs = await _prove_pairs(settings, spec, conn) if conn is not None else []
            if spec.confirm and conn is not None:  # blocking on purpose: Ctrl-C stays immediate
                confirm(spec.input, lambda: open_input(spec.input, settings), rules_from(settings),
                        _job_facts(settings, conn.endpoint))
            live = await _live_state(settings, conn, limiter, stop) if conn is not None else None
            effective: dict[str, Any] = {"endpoint": conn.endpoint, "path_family": conn.family,
                                         "auth": conn.auth.name} if conn else {}
            if len(pairs) > 1:
                effective["pairs"] = [p.key for p in pairs]
            manifest = Manifest(report_path, settings.report_format, spec.input.path,
                                {**settings.public(), **effective}, input_digest=digest,
                                resumed=_resumed(report_path, journal),
                                links={**_links(report_path, journal), **spec.links})
            try:
                # Locked before a byte is truncated or written: two runs started together never
                # spoil each other's report (the loser gets one line).
                report, report_lock = open_report(
                    report_path, settings.report_format, SECRETS.redact, resume=journal is not None,
                    overwrite=spec.overwrite, fsync=settings.fsync, lock=lock)
                if lock is None:
                    held.callback(os.close, report_lock)
                held.callback(report.close)
                # The fingerprint is on disk before the first row: any report can be resumed. After
                # the report is ours, so a loser never replaces the winner's manifest.
                manifest.write()
            except JournalError as exc:
                raise ConfigError(str(exc)) from None
            except OSError as exc:
                raise ConfigError(f"cannot write the report {report_path}: {exc.strerror or exc}") from None
            return await _run(settings, spec, rows, conn, limiter, stop, report, extra_sinks,
                              on_terminal, journal, manifest, live)


def _connected(settings: Settings, creds: Credentials | None, limiter: Limiter, stop: Stop,
               rows_name_regions: bool) -> contextlib.AbstractAsyncContextManager[Connection | None]:
    if creds is None:  # a dry run sends nothing
        return contextlib.nullcontext()
    return connection_from(settings, creds, limiter, stop, rows_name_regions)


async def _prove_pairs(settings: Settings, spec: JobSpec, conn: Connection) -> list[Pair]:
    """Every (project, region) pair a jobs file names, proven before the report exists. A pair
    the job's settings cannot serve (a second project under one token, a second region under one
    endpoint) refuses the job; a pair whose credentials or endpoint are refused fails its rows
    only, unless no pair is left. Stdin is read once: its pairs are proven as rows meet them."""
    if spec.input.path == "-":
        return []
    with open_input(spec.input, settings) as again:
        if again.fields is None or not {"project_id", "region"} & again.fields:
            return []
        named = await asyncio.to_thread(named_pairs, again, settings.project_id)
    router = conn.router
    pairs = sorted({router.pair(project, region) for project, region in named})
    if not pairs:  # no valid row: the validator says why, row by row
        return []
    answers = await router.prove(pairs)
    refused = {pair: answer for pair, answer in answers.items() if isinstance(answer, RouteError)}
    for answer in refused.values():
        if answer.setup:
            raise ConfigError(f"{spec.input.display_name}: {answer}")
    if conn.router.stopping:
        raise ConfigError(str(conn.router.stop_reason))
    if len(refused) == len(pairs):
        raise ConfigError(f"no project and region of {spec.input.display_name} can be used: "
                          + "; ".join(str(a) for a in refused.values()))
    for answer in refused.values():
        log.error("pair refused: its rows fail, not sent", error=str(answer))
    log.info("pairs proven", pairs=len(pairs) - len(refused), refused=len(refused))
    return pairs


def _warn_if_read_only(conn: Connection) -> None:
    """A reader-only token passes the credential check (a GET); its PUTs will be refused."""
    auth = conn.auth
    if isinstance(auth, KeystoneAuth) and auth.token is not None:
        warning = roles.warning(auth.token.roles)
        if warning is not None:
            log.warning("read-only roles", problem=warning)


def _job_facts(settings: Settings, endpoint: str) -> JobFacts:
    """Where and how fast, for the confirmation question."""
    where = f"to {endpoint} (project {settings.project_id or 'from the rows'}), "
    rate = None if settings.rate == "auto" else settings.rate
    return JobFacts(
        where + ("at the API's quota, found from its 429 answers (--rate auto)" if rate is None
                 else f"at most {rate_text(rate)}"),
        rate or None, settings.limit, settings.canary)


# Settings that change what a row means or where it goes: worth a warning when a resume differs.
RESUME_SENSITIVE = ("endpoint", "project_id", "path_family", "allow_autobk_prefix", "limits_profile")


def _lock(report_path: str) -> int | None:
    try:
        return lock_report(report_path)
    except JournalError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot write the report {report_path}: {exc.strerror or exc}") from None


def _journal(report_path: str, settings: Settings, spec: JobSpec,
             digest: tuple[int, str] | None) -> Journal:
    """The existing report as the journal of this jobs file, its torn tail cut off."""
    before = read_manifest(report_path)
    try:
        check_fingerprint(report_path, before, spec.input.display_name, digest,
                          settings.report_format)
        journal = read_journal(report_path, settings.report_format)
        torn = journal.torn_bytes
        journal.repair()
    except JournalError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot resume {report_path}: {exc.strerror or exc}") from None
    earlier = (before or {}).get("settings") or {}
    changed = {key: f"{earlier.get(key)} -> {value}" for key, value in settings.public().items()
               if key in RESUME_SENSITIVE and value is not None and earlier.get(key) != value}
    if changed:
        log.warning("resuming with other settings than the report's run", **changed)
    log.info("resume", report=report_path, skipping=len(journal.final),
             **{str(o): n for o, n in journal.counts.items()},
             superseded_rows=journal.records - len(journal.final), torn_tail_bytes_cut=torn)
    return journal


def _resumed(report_path: str, journal: Journal | None) -> dict[str, Any] | None:
    """The manifest's record of the runs so far."""
    if journal is None:
        return None
    before = read_manifest(report_path) or {}
    earlier = before.get("resumed") or {}
    return {
        "runs": int(earlier.get("runs", 1)) + 1,
        "first_started_at": earlier.get("first_started_at") or before.get("started_at"),
        "skipped": len(journal.final),
    }


def _links(report_path: str, journal: Journal | None) -> dict[str, Any]:
    """A resumed report keeps the manifest's links to its retries (run --retry-from)."""
    before = (read_manifest(report_path) or {}) if journal is not None else {}
    return {key: before[key] for key in ("retry_of", "retried_by") if key in before}


async def _live_state(settings: Settings, conn: Connection, limiter: Limiter,
                      stop: Stop) -> LiveState | None:
    """--skip-unchanged: the default project is listed before the report exists, so a listing
    that cannot work stops the job with nothing sent; other projects are listed when met."""
    live = live_state_from(settings, conn, limiter, stop)
    if live is not None and settings.project_id and conn.api is not None:
        try:
            await live.table(settings.project_id)
        except (ListingError, RouteError) as exc:
            raise ConfigError(f"--skip-unchanged: {exc}") from None
    return live


async def _run(settings: Settings, spec: JobSpec, rows: Rows, conn: Connection | None,
               limiter: Limiter, stop: Stop, report: ReportWriter, extra_sinks: tuple[Sink, ...],
               on_terminal: bool, journal: Journal | None, manifest: Manifest,
               live: LiveState | None) -> JobResult:
    relabeler = safety = None
    by_pair = PairCounts(settings.region)
    if conn is not None:
        relabeler = relabeler_from(settings, conn, limiter, stop)
        safety = safety_from(settings, stop)
    engine = engine_from(
        settings, iter(rows), relabeler, [report, by_pair, *extra_sinks], stop, limiter, on_terminal,
        on_result=safety.observe if safety else None, gate=safety.admit if safety else None,
        skip=journal.final if journal else None, live=live)
    counting = asyncio.create_task(asyncio.to_thread(count_rows, spec.input))
    counting.add_done_callback(
        lambda t: None if t.cancelled() or t.exception() else engine.set_total(t.result()))
    log.info(
        "start", input=spec.input.display_name, report=report.path, dry_run=spec.dry_run,
        endpoint=conn.endpoint if conn else settings.endpoint,
        path_family=conn.family if conn else settings.path_family, project_id=settings.project_id,
        rate=as_written(settings.rate), concurrency=settings.concurrency,
        auth=conn.auth.name if conn else None,
        endpoint_from=conn.endpoint_origin if conn else None,
        **({"resume_skips": len(journal.final)} if journal else {}),
    )
    try:
        ran = await execute(engine, stop, on_signal=live.close if live is not None else None)
    finally:
        counting.cancel()
        if live is not None:
            live.close()
    summary = ran.summary
    if not summary.rows and not summary.skipped:
        log.warning("no rows in the input", input=spec.input.display_name)
    totals = summary.counts + (journal.counts if journal else Counter())
    try:
        report.close()  # before the manifest: it records the report's final checksum
    except OSError as exc:  # the last rows could not be written (a full disk): fatal too
        log.error("cannot record results", error=f"{type(exc).__name__}: {exc}")
        ran = dataclasses.replace(ran, fatal=ran.fatal or exc)
    code = exit_code(ran, problems=bool(totals[Outcome.REJECTED] or totals[Outcome.FAILED]))
    try:
        manifest.finish(ran.status, {
            **job_figures(summary, code),
            **({"by_pair": pairs} if (pairs := by_pair.figures()) else {}),
            # The whole report, earlier runs included: one answer per input line.
            "report_totals": {"rows": sum(totals.values()),
                              **{str(o): n for o, n in totals.items()}},
        })
    except OSError as exc:
        log.error("cannot write the manifest", path=manifest.report_path, error=f"{type(exc).__name__}: {exc}")
    log.info("summary", **summary.as_fields(), **({"by_pair": pairs} if pairs else {}),
             report=report.path, exit_code=code)
    fatal = f"cannot go on: {type(ran.fatal).__name__}: {ran.fatal}" if ran.fatal else None
    return JobResult(summary, code, report.path, fatal)
