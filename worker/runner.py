"""One relabel job from settings to exit code: checks everything that can be checked before a
request is sent, assembles the pipeline, handles signals, reports the summary."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

from . import exitcodes
from .api.client import HttpSettings, ListingError
from .confirm import confirm
from .connection import Connection, connect
from .credentials import Credentials
from .credentials import resolve as resolve_credentials
from .engine import Engine, Sink, Summary
from .jobs import FIELD_LENGTHS, JobRules, Validator
from .concurrency import MAX as MOST_IN_FLIGHT
from .concurrency import ConcurrencySizer
from .journal import Journal, JournalError, check_fingerprint, lock_report, read_journal
from .rate import Limiter, make_limiter
from .live import LiveState
from .logs import log
from .manifest import Manifest, file_digest, job_figures, read_manifest
from .progress import Progress
from .redaction import SECRETS
from .relabel import Relabeler
from .report import ReportWriter
from .results import Outcome
from .retry import RetryPolicy
from .safety import ROW_CAP, SafetyPolicy, SafetyRules
from .settings import ConfigError, Settings
from .sources import HeaderError, InputSpec, Rows, count_rows, open_rows


@dataclass(frozen=True)
class JobSpec:
    input: InputSpec
    report: str | None = None  # None: a new timestamped file in the working directory
    dry_run: bool = False
    overwrite: bool = False
    confirm: bool = False  # ask on the terminal before a job of more than 1,000 rows
    resume: bool = False  # continue an existing report: skip the rows it already answers


@dataclass
class JobResult:
    summary: Summary
    exit_code: int
    report: str


def default_report_path(fmt: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"snaprelabel-report-{stamp}.{fmt}"


def rules_from(settings: Settings) -> JobRules:
    return JobRules(
        default_project_id=settings.project_id,
        allow_autobk_prefix=settings.allow_autobk_prefix,
        lengths=FIELD_LENGTHS[settings.limits_profile],
    )


def retry_policy_from(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        base=settings.backoff_base,
        cap=settings.backoff_cap,
        deadline=settings.job_deadline,
        throttled_min=settings.throttled_backoff,
    )


def http_from(settings: Settings) -> HttpSettings:
    return HttpSettings(
        concurrency=MOST_IN_FLIGHT if settings.concurrency == "auto" else settings.concurrency,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        total_timeout=settings.total_timeout,
        verify_tls=settings.verify_tls,
        ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
    )


async def run_job(settings: Settings, spec: JobSpec, extra_sinks: tuple[Sink, ...] = (),
                  on_terminal: bool | None = None) -> JobResult:
    """Raises ConfigError for anything that stops the job before a request is sent."""
    if on_terminal is None:
        on_terminal = sys.stderr.isatty()
    creds = None if spec.dry_run else resolve_credentials(settings)
    if spec.resume and (spec.overwrite or spec.dry_run):
        raise ConfigError("--resume cannot be combined with --overwrite or --dry-run")
    if spec.resume and spec.input.path == "-":
        raise ConfigError("--resume needs a jobs file: stdin cannot be fingerprinted, so a resumed "
                          "run could not prove that it reads the same rows")
    if settings.skip_unchanged and spec.dry_run:
        raise ConfigError("--skip-unchanged reads the live state: it cannot be combined with --dry-run")
    report_path = spec.report or default_report_path(settings.report_format)
    existing = os.path.exists(report_path)
    if existing and not (spec.overwrite or spec.resume):
        raise ConfigError(f"report {report_path} already exists: pass --overwrite to replace it, "
                          "or --resume to continue it")
    try:
        digest = await asyncio.to_thread(file_digest, spec.input.path)
    except OSError as exc:
        raise ConfigError(f"cannot read {spec.input.display_name}: {exc.strerror or exc}") from None

    validator = Validator(rules_from(settings))
    limiter = make_limiter(settings.rate)
    with open_input(spec.input, settings) as rows, contextlib.ExitStack() as held:
        # Lock before reading or truncating a report, so a run never clobbers a running one.
        lock = _lock(report_path) if existing else None
        if lock is not None:
            held.callback(os.close, lock)
        journal = _journal(report_path, settings, spec, digest) if spec.resume and existing else None
        # The credentials are proven before the report exists: a refused one leaves nothing.
        async with _connected(settings, creds, limiter) as conn:
            if spec.confirm and conn is not None:  # blocking on purpose: Ctrl-C stays immediate
                confirm(spec.input, settings, conn.endpoint)
            live = await _live_state(settings, conn, limiter) if conn is not None else None
            effective = {"endpoint": conn.endpoint, "path_family": conn.family,
                         "auth": conn.auth.name} if conn else {}
            manifest = Manifest(report_path, settings.report_format, spec.input.path,
                                {**settings.public(), **effective}, input_digest=digest,
                                resumed=_resumed(report_path, journal))
            try:
                # The fingerprint is on disk before the first row: any report can be resumed.
                manifest.write()
                report = ReportWriter(report_path, settings.report_format, SECRETS.redact,
                                      append=journal is not None, fsync=settings.fsync)
            except OSError as exc:
                raise ConfigError(f"cannot write the report {report_path}: {exc.strerror or exc}") from None
            held.callback(report.close)
            if lock is None and (lock := _lock(report_path)) is not None:
                held.callback(os.close, lock)
            return await _run(settings, spec, rows, validator, conn, limiter, report,
                              extra_sinks, on_terminal, journal, manifest, live)


def _connected(settings: Settings, creds: Credentials | None, limiter: Limiter
               ) -> contextlib.AbstractAsyncContextManager[Connection | None]:
    if creds is None:  # a dry run sends nothing
        return contextlib.nullcontext()
    return connect(creds, http_from(settings), limiter, retry_policy_from(settings))


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


def _resumed(report_path: str, journal: Journal | None) -> dict | None:
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


async def _live_state(settings: Settings, conn: Connection, limiter: Limiter) -> LiveState | None:
    """--skip-unchanged: the default project is listed before the report exists, so a listing
    that cannot work stops the job with nothing sent; other projects are listed when met."""
    if not settings.skip_unchanged:
        return None
    live = LiveState(conn.api, limiter, retry_policy_from(settings), settings.allow_autobk_prefix)
    if settings.project_id:
        try:
            await live.table(settings.project_id)
        except ListingError as exc:
            raise ConfigError(f"--skip-unchanged: {exc}") from None
    return live


def open_input(spec: InputSpec, settings: Settings) -> Rows:
    """The input's rows, once its header is known to be usable with these settings."""
    try:
        rows = open_rows(spec)
    except HeaderError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {spec.display_name}: {exc.strerror or exc}") from None
    if rows.fields is not None and "project_id" not in rows.fields and not settings.project_id:
        rows.close()
        raise ConfigError(
            f"{spec.display_name}: no project_id column and no --project-id "
            "(or SNAPRELABEL_PROJECT_ID)"
        )
    return rows


async def _run(settings: Settings, spec: JobSpec, rows: Rows, validator: Validator,
               conn: Connection | None, limiter: Limiter, report: ReportWriter,
               extra_sinks: tuple[Sink, ...], on_terminal: bool, journal: Journal | None,
               manifest: Manifest, live: LiveState | None) -> JobResult:
    progress = Progress(None, on_terminal)
    relabeler = None
    safety = None
    if conn is not None:
        relabeler = Relabeler(conn.api, limiter, retry_policy_from(settings))
        safety = SafetyPolicy(SafetyRules.from_settings(settings), settings.grace)
    engine = Engine(
        iter(rows),
        validator,
        relabeler,
        [report, *extra_sinks],
        concurrency=16 if settings.concurrency == "auto" else settings.concurrency,
        progress=progress,
        log_successes=not on_terminal,
        on_result=safety.observe if safety else None,
        gate=safety.admit if safety else None,
        skip=journal.final if journal else None,
        live=live,
        sizer=sizer_for(settings, limiter) if conn is not None else None,
    )
    if safety:
        safety.bind(engine)
    received: list[int] = []
    loop = asyncio.get_running_loop()
    if conn is not None:
        conn.auth.on_refused = lambda reason: _stop_refused(engine, reason, settings.grace)

    def on_signal(signum: int) -> None:
        received.append(signum)
        engine.stop(signal.Signals(signum).name, settings.grace)
        if live is not None:
            live.close()  # a listing under way has nothing to finish

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    counting = asyncio.create_task(asyncio.to_thread(count_rows, spec.input))
    counting.add_done_callback(
        lambda t: t.cancelled() or t.exception() or progress.set_total(t.result()))
    log.info(
        "start", input=spec.input.display_name, report=report.path, dry_run=spec.dry_run,
        endpoint=conn.endpoint if conn else settings.endpoint,
        path_family=conn.family if conn else settings.path_family, project_id=settings.project_id,
        rate=settings.rate, concurrency=settings.concurrency,
        auth=conn.auth.name if conn else None,
        endpoint_from=conn.endpoint_origin if conn else None,
        **({"resume_skips": len(journal.final)} if journal else {}),
    )
    try:
        summary = await engine.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        counting.cancel()
        if live is not None:
            live.close()
    if not summary.rows and not summary.skipped:
        log.warning("no rows in the input", input=spec.input.display_name)
    totals = summary.counts + (journal.counts if journal else Counter())
    code = _exit_code(summary, totals, engine, received)
    report.close()  # the manifest records the report's final checksum
    manifest.finish(_status(engine, received), {
        **job_figures(summary, code),
        # The whole report, earlier runs included: one answer per input line.
        "report_totals": {"rows": sum(totals.values()), **{str(o): n for o, n in totals.items()}},
    })
    log.info("summary", **summary.as_fields(), report=report.path, exit_code=code)
    return JobResult(summary, code, report.path)


def sizer_for(settings: Settings, limiter: Limiter) -> ConcurrencySizer | None:
    """`--concurrency auto`: sized from the limiter's rate of the moment and the latency."""
    if settings.concurrency != "auto":
        return None
    return ConcurrencySizer(lambda: getattr(limiter, "rate", None))


def _stop_refused(engine: Engine, reason: str, grace: float) -> None:
    """Credentials refused for good mid-job (AK/SK signature, a password changed): every further
    request would be refused too, and under AK/SK each one counts toward the key's lockout."""
    if not engine.stopping:
        engine.stop(f"credentials refused: {reason}", grace)


def _status(engine: Engine, received: list[int]) -> str:
    if engine.fatal is not None:
        return "failed"
    if received:
        return "interrupted"
    # A --limit stop is a finished job: it did all it was asked to.
    return "stopped" if engine.summary.stopped not in (None, ROW_CAP) else "finished"


def _exit_code(summary: Summary, totals: Counter[Outcome], engine: Engine,
               received: list[int]) -> int:
    """`totals`: the whole report's, so a resumed job still exits 1 for an earlier failure."""
    if engine.fatal is not None:
        return exitcodes.FATAL
    if received:
        return exitcodes.SIGTERM if received[0] == signal.SIGTERM else exitcodes.SIGINT
    if summary.stopped not in (None, ROW_CAP):  # a safety rail, or credentials refused mid-job
        return exitcodes.STOPPED
    if totals[Outcome.REJECTED] or totals[Outcome.FAILED]:
        return exitcodes.PROBLEMS
    return exitcodes.OK
