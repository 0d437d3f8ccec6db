"""One relabel job from settings to exit code: checks everything that can be checked before a
request is sent, assembles the pipeline, handles signals, reports the summary."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from datetime import datetime, timezone

from . import exitcodes
from .api.client import HttpSettings
from .confirm import confirm
from .connection import Connection, connect
from .credentials import Credentials
from .credentials import resolve as resolve_credentials
from .engine import Engine, Sink, Summary
from .jobs import LIMITS_PROFILES, JobRules, Validator
from .limits import RateLimiter
from .logs import log
from .manifest import Manifest, file_digest, job_figures
from .progress import Progress
from .redaction import SECRETS
from .relabel import Relabeler
from .report import ReportWriter
from .results import Outcome
from .retry import RetryPolicy
from .safety import LIMIT, SafetyPolicy, SafetyRules
from .settings import ConfigError, Settings
from .sources import HeaderError, InputSpec, Rows, count_rows, open_rows


@dataclass(frozen=True)
class JobSpec:
    input: InputSpec
    report: str | None = None  # None: a new timestamped file in the working directory
    dry_run: bool = False
    overwrite: bool = False
    confirm: bool = False  # ask on the terminal before a job of more than 1,000 rows


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
        limits=LIMITS_PROFILES[settings.limits_profile],
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
        concurrency=settings.concurrency,
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
    report_path = spec.report or default_report_path(settings.report_format)
    if os.path.exists(report_path) and not spec.overwrite:
        raise ConfigError(f"report {report_path} already exists: pass --overwrite to replace it")

    validator = Validator(rules_from(settings))
    limiter = RateLimiter(settings.rate)
    with open_input(spec.input, settings) as rows:
        # The credentials are proven before the report exists: a refused one leaves nothing.
        async with _connected(settings, creds, limiter) as conn:
            if spec.confirm and conn is not None:  # blocking on purpose: Ctrl-C stays immediate
                confirm(spec.input, settings, conn.endpoint)
            try:
                report = ReportWriter(report_path, settings.report_format, SECRETS.redact,
                                      fsync=settings.fsync)
            except OSError as exc:
                raise ConfigError(f"cannot write the report {report_path}: {exc.strerror or exc}") from None
            try:
                return await _run(settings, spec, rows, validator, conn, limiter, report,
                                  extra_sinks, on_terminal)
            finally:
                report.close()


def _connected(settings: Settings, creds: Credentials | None, limiter: RateLimiter
               ) -> contextlib.AbstractAsyncContextManager[Connection | None]:
    if creds is None:  # a dry run sends nothing
        return contextlib.nullcontext()
    return connect(creds, http_from(settings), limiter, retry_policy_from(settings))


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
               conn: Connection | None, limiter: RateLimiter, report: ReportWriter,
               extra_sinks: tuple[Sink, ...], on_terminal: bool) -> JobResult:
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
        concurrency=settings.concurrency,
        progress=progress,
        log_successes=not on_terminal,
        on_result=safety.observe if safety else None,
        gate=safety.admit if safety else None,
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

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    counting = asyncio.create_task(asyncio.to_thread(count_rows, spec.input))
    counting.add_done_callback(
        lambda t: t.cancelled() or t.exception() or progress.set_total(t.result()))
    effective = {"endpoint": conn.endpoint, "path_family": conn.family,
                 "auth": conn.auth.name} if conn else {}
    manifest = Manifest(report.path, settings.report_format, spec.input.path,
                        {**settings.public(), **effective})
    fingerprint = asyncio.create_task(_write_manifest_with_digest(manifest))
    log.info(
        "start", input=spec.input.display_name, report=report.path, dry_run=spec.dry_run,
        endpoint=conn.endpoint if conn else settings.endpoint,
        path_family=conn.family if conn else settings.path_family, project_id=settings.project_id,
        rate=settings.rate, concurrency=settings.concurrency,
        auth=conn.auth.name if conn else None,
        endpoint_from=conn.endpoint_origin if conn else None,
    )
    try:
        summary = await engine.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        counting.cancel()
        await fingerprint
    code = _exit_code(summary, engine, received)
    report.close()  # the manifest records the report's final checksum
    manifest.finish(_status(engine, received), job_figures(summary, code))
    log.info("summary", **summary.as_fields(), report=report.path, exit_code=code)
    return JobResult(summary, code, report.path)


def _stop_refused(engine: Engine, reason: str, grace: float) -> None:
    """Credentials refused for good mid-job (AK/SK signature, a password changed): every further
    request would be refused too, and under AK/SK each one counts toward the key's lockout."""
    if not engine.stopping:
        engine.stop(f"credentials refused: {reason}", grace)


async def _write_manifest_with_digest(manifest: Manifest) -> None:
    manifest.input_digest = await asyncio.to_thread(file_digest, manifest.input_path)
    manifest.write()


def _status(engine: Engine, received: list[int]) -> str:
    if engine.fatal is not None:
        return "failed"
    if received:
        return "interrupted"
    # A --limit stop is a finished job: it did all it was asked to.
    return "stopped" if engine.summary.stopped not in (None, LIMIT) else "finished"


def _exit_code(summary: Summary, engine: Engine, received: list[int]) -> int:
    if engine.fatal is not None:
        return exitcodes.FATAL
    if received:
        return exitcodes.SIGTERM if received[0] == signal.SIGTERM else exitcodes.SIGINT
    if summary.stopped not in (None, LIMIT):  # a safety rail, or credentials refused mid-job
        return exitcodes.STOPPED
    if summary.counts[Outcome.REJECTED] or summary.counts[Outcome.FAILED]:
        return exitcodes.PROBLEMS
    return exitcodes.OK
