"""Settings into parts: the only place below the command line that reads `Settings` to build
something. The jobs (`runner` for run, `queue.service` for consume) and the commands ask here for
their parts; the parts themselves never see a setting."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container
from contextlib import AbstractAsyncContextManager

from .api.auth import Auth
from .api.client import HttpSettings, SnapshotApi
from .concurrency import AUTO_START, ConcurrencySizer
from .concurrency import MAX as MOST_IN_FLIGHT
from .connection import Connection, connect
from .credentials import Credentials, resolve
from .engine import Engine, Sink, Source
from .errors import ConfigError
from .jobs import FIELD_LENGTHS, Job, JobRules, Validator
from .live import LiveState
from .logs import log
from .progress import Progress
from .rate import Limiter, make_limiter
from .relabel import Relabeler, Updates
from .results import Result
from .retry import Counters, Retrier, RetryPolicy
from .safety import SafetyPolicy, SafetyRules
from .settings import Settings
from .sources import HeaderError, InputSpec, Rows, open_rows
from .stop import Stop


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
        throttled_min=throttled_backoff(settings),
    )


def throttled_backoff(settings: Settings) -> float:
    """The least wait after a 429 without Retry-After. With --rate auto, none unless given: the
    limiter slows to the quota (and waits out a closed window) itself, and a throttled row's
    retry takes its slot in that pace; seconds on top only stretched the job's tail
    (docs/design.md#retries)."""
    if settings.rate == "auto" and "throttled_backoff" not in settings.model_fields_set:
        return 0.0
    return settings.throttled_backoff


def http_from(settings: Settings) -> HttpSettings:
    return HttpSettings(
        concurrency=MOST_IN_FLIGHT if settings.concurrency == "auto" else settings.concurrency,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        total_timeout=settings.total_timeout,
        verify_tls=settings.verify_tls,
        ca_bundle=str(settings.ca_bundle) if settings.ca_bundle else None,
    )


def limiter_from(settings: Settings) -> Limiter:
    return make_limiter(settings.rate)


def senders_from(settings: Settings) -> int:
    """Senders at the start (and a queue consumer's read size): --concurrency, or AUTO_START."""
    return AUTO_START if settings.concurrency == "auto" else settings.concurrency


def sizer_from(settings: Settings, limiter: Limiter) -> ConcurrencySizer | None:
    """`--concurrency auto`: sized from the limiter's rate of the moment and the latency."""
    if settings.concurrency != "auto":
        return None
    return ConcurrencySizer(lambda: getattr(limiter, "rate", None))


def safety_rules_from(settings: Settings) -> SafetyRules:
    return SafetyRules(settings.max_failure_rate, settings.min_tasks,
                       settings.max_consecutive_auth_failures, settings.canary, settings.limit)


def stop_from(settings: Settings) -> Stop:
    return Stop(settings.grace)


def credentials_from(settings: Settings) -> Credentials:
    return resolve(settings)


def connection_from(settings: Settings, creds: Credentials, limiter: Limiter, stop: Stop,
                    rows_name_regions: bool = False, prove: bool = True) -> AbstractAsyncContextManager[Connection]:
    return connect(creds, http_from(settings), limiter, retry_policy_from(settings), stop,
                   rows_name_regions, prove)


def retrier_from(settings: Settings, limiter: Limiter, stop: Stop, auth: Auth | None,
                 counters: Counters | None = None) -> Retrier:
    return Retrier(retry_policy_from(settings), limiter, stop, auth, counters)


def relabeler_from(settings: Settings, conn: Connection, limiter: Limiter, stop: Stop,
                   counters: Counters | None = None,
                   wrap: Callable[[SnapshotApi], Updates] | None = None) -> Relabeler:
    """Each row goes to its (project, region) pair's route (worker/routing.py); `wrap`: what
    each route's API is wrapped in (the queue's metrics)."""
    return Relabeler(conn.api, retrier_from(settings, limiter, stop, conn.auth, counters),
                     conn.router, wrap)


def live_state_from(settings: Settings, conn: Connection, limiter: Limiter,
                    stop: Stop) -> LiveState | None:
    """--skip-unchanged: the live listing, under the job's rate and its own retry counters."""
    if not settings.skip_unchanged:
        return None
    return LiveState(conn.api, retrier_from(settings, limiter, stop, conn.auth),
                     settings.allow_autobk_prefix, conn.router)


def engine_from(settings: Settings, rows: Source, relabeler: Relabeler | None, sinks: list[Sink],
                stop: Stop, limiter: Limiter, on_terminal: bool, *, on_result: Callable[[Result], None] | None = None,
                gate: Callable[[Job], Awaitable[None]] | None = None,
                skip: Container[int] | None = None, live: LiveState | None = None) -> Engine:
    return Engine(
        rows, Validator(rules_from(settings)), relabeler, sinks, stop,
        concurrency=senders_from(settings),
        progress=Progress(None, on_terminal),
        log_successes=not on_terminal,
        on_result=on_result, gate=gate, skip=skip, live=live,
        sizer=sizer_from(settings, limiter) if relabeler is not None else None,
    )


def safety_from(settings: Settings, stop: Stop, rules: SafetyRules | None = None) -> SafetyPolicy:
    return SafetyPolicy(rules or safety_rules_from(settings), stop)


def open_input(spec: InputSpec, settings: Settings, project_from_login: bool = False) -> Rows:
    """The input's rows, once its header is known to be usable with these settings.
    `project_from_login`: the credentials log in with a project (by name, or an application
    credential's), so rows without a project_id may wait for the token's (`require_project`)."""
    try:
        rows = open_rows(spec)
    except HeaderError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {spec.display_name}: {exc.strerror or exc}") from None
    if not project_from_login:
        try:
            require_project(spec, rows, settings.project_id)
        except ConfigError:
            rows.close()
            raise
    return rows


def require_project(spec: InputSpec, rows: Rows, project_id: str | None) -> None:
    """ConfigError when rows without a project_id column would have no project to go to."""
    if rows.fields is not None and "project_id" not in rows.fields and not project_id:
        raise ConfigError(
            f"{spec.display_name}: no project_id column and no project: give --project-id (or "
            "SNAPRELABEL_PROJECT_ID or OS_PROJECT_ID), or log in to a project (OS_PROJECT_NAME "
            "with a password, or an application credential) to use the token's"
        )


def project_from_login(creds: Credentials | None) -> bool:
    """Whether logging in names the project when no project id is given."""
    return creds is not None and creds.login is not None


def with_login_project(settings: Settings, conn: Connection | None) -> Settings:
    """The settings with the token's project as the project of rows without one, when no
    project id was given (a devstack openrc names the project, not its id)."""
    if settings.project_id or conn is None or not conn.project_id:
        return settings
    log.info("project from the token", project_id=conn.project_id)
    return settings.model_copy(update={"project_id": conn.project_id})
