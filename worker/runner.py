"""One relabel job from settings to exit code: checks everything that can be checked before a
request is sent, assembles the pipeline, handles signals, reports the summary."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from datetime import datetime, timezone

from . import exitcodes
from .api.auth import Auth, NoAuth, StaticToken
from .api.client import HttpSettings, SnapshotApi, make_session
from .engine import Engine, Sink, Summary
from .jobs import LIMITS_PROFILES, JobRules, Validator
from .concurrency import MAX as MOST_IN_FLIGHT
from .concurrency import ConcurrencySizer
from .limits import Limiter, make_limiter
from .logs import log
from .manifest import Manifest, file_digest
from .progress import Progress
from .redaction import SECRETS
from .relabel import Relabeler
from .report import ReportWriter
from .results import Outcome
from .retry import RetryPolicy
from .settings import ConfigError, Settings
from .sources import HeaderError, InputSpec, Rows, count_rows, open_rows


@dataclass(frozen=True)
class JobSpec:
    input: InputSpec
    report: str | None = None  # None: a new timestamped file in the working directory
    dry_run: bool = False
    overwrite: bool = False


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


def auth_from(settings: Settings) -> Auth:
    if settings.token is not None:
        SECRETS.add(settings.token.get_secret_value())
        return StaticToken(settings.token.get_secret_value())
    if settings.no_auth:
        return NoAuth()
    raise ConfigError(
        "no credentials: set SNAPRELABEL_TOKEN (or --token), or --no-auth for an endpoint "
        "that needs none"
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
    auth: Auth | None = None
    if not spec.dry_run:
        if not settings.endpoint:
            raise ConfigError("no endpoint: give --endpoint or set SNAPRELABEL_ENDPOINT")
        auth = auth_from(settings)
    report_path = spec.report or default_report_path(settings.report_format)
    if os.path.exists(report_path) and not spec.overwrite:
        raise ConfigError(f"report {report_path} already exists: pass --overwrite to replace it")

    validator = Validator(rules_from(settings))
    with open_input(spec.input, settings) as rows:
        try:
            report = ReportWriter(report_path, settings.report_format, SECRETS.redact,
                                  fsync=settings.fsync)
        except OSError as exc:
            raise ConfigError(f"cannot write the report {report_path}: {exc.strerror or exc}") from None
        try:
            return await _run(settings, spec, rows, validator, auth, report, extra_sinks,
                              on_terminal)
        finally:
            report.close()


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
               auth: Auth | None, report: ReportWriter, extra_sinks: tuple[Sink, ...],
               on_terminal: bool) -> JobResult:
    progress = Progress(None, on_terminal)
    session = None
    relabeler = None
    limiter: Limiter | None = None
    if not spec.dry_run:
        assert auth is not None and settings.endpoint
        if not settings.verify_tls:
            log.warning("TLS certificate verification is off (--insecure): the endpoint is not authenticated")
        session = make_session(http_from(settings))
        api = SnapshotApi(session, settings.endpoint, settings.path_family, auth)
        limiter = make_limiter(settings.rate)
        relabeler = Relabeler(api, limiter, retry_policy_from(settings))
    engine = Engine(
        iter(rows),
        validator,
        relabeler,
        [report, *extra_sinks],
        concurrency=16 if settings.concurrency == "auto" else settings.concurrency,
        progress=progress,
        log_successes=not on_terminal,
        sizer=sizer_for(settings, limiter),
    )
    received: list[int] = []
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        received.append(signum)
        engine.stop(signal.Signals(signum).name, settings.grace)

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    counting = asyncio.create_task(asyncio.to_thread(count_rows, spec.input))
    counting.add_done_callback(
        lambda t: t.cancelled() or t.exception() or progress.set_total(t.result()))
    manifest = Manifest(report.path, settings.report_format, spec.input.path, settings.public())
    fingerprint = asyncio.create_task(_write_manifest_with_digest(manifest))
    log.info(
        "start", input=spec.input.display_name, report=report.path, dry_run=spec.dry_run,
        endpoint=settings.endpoint, path_family=settings.path_family, project_id=settings.project_id,
        rate=settings.rate, concurrency=settings.concurrency,
        auth=auth.name if auth else None,
    )
    try:
        summary = await engine.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        counting.cancel()
        await fingerprint
        if session is not None:
            await session.close()
        if auth is not None:
            await auth.close()
    code = _exit_code(summary, engine, received)
    report.close()  # the manifest records the report's final checksum
    manifest.finish(_status(engine, received), {**summary.as_fields(), "exit_code": code})
    log.info("summary", **summary.as_fields(), report=report.path, exit_code=code)
    return JobResult(summary, code, report.path)


def sizer_for(settings: Settings, limiter: Limiter | None) -> ConcurrencySizer | None:
    """`--concurrency auto`: sized from the limiter's rate of the moment and the latency."""
    if settings.concurrency != "auto" or limiter is None:
        return None
    return ConcurrencySizer(lambda: getattr(limiter, "rate", None))


async def _write_manifest_with_digest(manifest: Manifest) -> None:
    manifest.input_digest = await asyncio.to_thread(file_digest, manifest.input_path)
    manifest.write()


def _status(engine: Engine, received: list[int]) -> str:
    if engine.fatal is not None:
        return "failed"
    if received:
        return "interrupted"
    return "stopped" if engine.summary.stopped else "finished"


def _exit_code(summary: Summary, engine: Engine, received: list[int]) -> int:
    if engine.fatal is not None:
        return exitcodes.FATAL
    if received:
        return exitcodes.SIGTERM if received[0] == signal.SIGTERM else exitcodes.SIGINT
    if summary.counts[Outcome.REJECTED] or summary.counts[Outcome.FAILED]:
        return exitcodes.PROBLEMS
    return exitcodes.OK
