"""One consumer process, from settings to exit code: the credentials, connection check, engine
and sending side of `run`, fed by the consumer group, with the shared rate limit, a heartbeat for
the jobs it holds, metrics, and the stop of `run` on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from urllib.parse import urlsplit

from .. import exitcodes
from ..api.client import SnapshotApi
from ..connection import Connection
from ..credentials import Credentials
from ..errors import ConfigError
from ..execution import execute, exit_code
from ..logs import log
from ..quota import as_written
from ..rate import Limiter, make_limiter
from ..redaction import SECRETS
from ..relabel import Updates
from ..report import ReportWriter
from ..retry import Counters
from ..safety import SafetyRules
from ..secret_file import SecretFile
from ..settings import Settings
from ..stop import Stop
from ..waits import honour_lost_cancellation
from ..wiring import (
    connection_from,
    credentials_from,
    engine_from,
    limiter_from,
    relabeler_from,
    rules_from,
    safety_from,
    senders_from,
    stop_from,
    throttled_backoff,
    with_login_project,
)
from .consumer import QueueConsumer, QueueOptions, create_group
from .metrics import MeteredApi, Metrics
from .redis_link import RedisLink, RedisLost, RedisUnavailable
from .shared_auto import Outcomes, SharedLearning
from .shared_limit import Combined, SharedLimiter, limit_key
from .status import read_status
from .streams import QueueNames

UPKEEP_EVERY = 5.0  # seconds between metric updates of the queue's figures
UPKEEP_STOP = 5.0  # seconds the upkeep tasks get to finish once the work is done
SWEEP_EVERY, SWEEP_IDLE = 300.0, 3600.0  # forget consumers that hold nothing, idle an hour


def default_consumer_name() -> str:
    """Unique per container: a pod's hostname is its name; the pid tells processes apart."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class ConsumeSpec:
    consumer: str
    until_empty: bool = False
    report: str | None = None
    allow_other_groups: bool = False  # each group applies every job: refused unless asked for


def redis_url_from(settings: Settings) -> str:
    return redis_source(settings)[0]


def redis_source(settings: Settings) -> tuple[str, SecretFile | None]:
    """The Redis URL, and the file it came from (--redis-url-file wins over --redis)."""
    if settings.redis_url_file is not None:
        file = SecretFile(settings.redis_url_file, "Redis URL", lambda url: urlsplit(url).password)
        if urlsplit(file.value).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(f"the Redis URL file {settings.redis_url_file} does not hold a redis://, "
                              "rediss:// or unix:// URL")
        return file.value, file
    if settings.redis_url is None:
        raise ConfigError("no Redis: give --redis redis://HOST:6379/0, --redis-url-file FILE or set "
                          "SNAPRELABEL_REDIS_URL")
    return settings.redis_url.get_secret_value(), None


async def run_consumer(settings: Settings, spec: ConsumeSpec, on_terminal: bool | None = None) -> int:
    """Raises ConfigError for anything that stops the consumer before it starts."""
    if on_terminal is None:
        on_terminal = sys.stderr.isatty()
    url, url_file = redis_source(settings)
    creds = credentials_from(settings)
    report = None
    if spec.report:
        try:  # appended: a consumer restarted on the same volume goes on with the same report
            report = ReportWriter(spec.report, settings.report_format, SECRETS.redact,
                                  append=True, fsync=settings.fsync)
        except OSError as exc:
            raise ConfigError(f"cannot write the report {spec.report}: {exc.strerror or exc}") from None
    link = RedisLink(url, settings.redis_wait, url_file)
    try:
        return await _consume(settings, spec, link, creds, report, on_terminal)
    except (RedisUnavailable, RedisLost) as exc:  # before the engine started
        return _fatal(exc)
    finally:
        if report is not None:
            report.close()
        await link.close()


async def _consume(settings: Settings, spec: ConsumeSpec, link: RedisLink, creds: Credentials,
                   report: ReportWriter | None, on_terminal: bool) -> int:
    names = QueueNames(settings.stream, settings.group)
    await link.call("connect", lambda r: r.ping())
    await create_group(link, names, spec.allow_other_groups)
    local = local_limiter(settings)
    stop = stop_from(settings)
    async with connection_from(settings, creds, local, stop, prove=False) as conn:
        # Jobs without a project_id go to the token's project when no project id was given.
        return await _work(with_login_project(settings, conn), spec, link, names, conn, local, stop,
                           report, on_terminal)


def local_limiter(settings: Settings) -> Limiter:
    """Each replica's own cap: --rate when it was given (flag, variable or file); with a shared
    rate and no --rate, none but the shared one, else the default 5/s would cap every replica
    (two replicas under --shared-rate 20 sent 10/s). --rate auto, shared: none but the shared."""
    if (settings.shared_rate and "rate" not in settings.model_fields_set) or shares_learning(settings):
        return make_limiter(None)
    return limiter_from(settings)


def shares_learning(settings: Settings) -> bool:
    """--rate auto without --shared-rate: one learning for every replica (shared_auto.py)."""
    return settings.rate == "auto" and settings.shared_rate is None


def _shared_rate(settings: Settings) -> float | None:
    if settings.shared_rate is not None or settings.rate == "auto":
        return settings.shared_rate
    return settings.rate


async def _work(settings: Settings, spec: ConsumeSpec, link: RedisLink, names: QueueNames,
                conn: Connection, local: Limiter, stop: Stop, report: ReportWriter | None,
                on_terminal: bool) -> int:
    # The sender's parts are composed first, then the sender is built whole.
    shared_rate = _shared_rate(settings)
    shared = learning = None
    limiter = sizing = local
    key = limit_key(conn.endpoint, conn.credentials.project_id)
    if shares_learning(settings):
        outcomes = Outcomes()
        learning = SharedLearning(link.client, key, spec.consumer, outcomes)
        limiter = sizing = shared = SharedLimiter(link.client, key, None, spec.consumer,
                                                  throttled_backoff(settings), outcomes=outcomes)
    elif shared_rate:
        shared = SharedLimiter(link.client, key, shared_rate, spec.consumer,
                               settings.throttled_backoff)
        limiter = Combined(local, shared)
    # The credentials and the endpoint are proven (one GET) before any job is taken, under the
    # limit the jobs share: a replica's GET outside it went past a shared quota, unseen by the
    # shared learning (three replicas' GETs in the second the ramp counted: 97 of 100 learnt).
    await conn.prove(limiter)
    counters = Counters()
    metrics = metrics_port = None
    wrap: Callable[[SnapshotApi], Updates] | None = None
    if settings.metrics_port is not None:
        metrics = Metrics(counters)
        wrap = partial(MeteredApi, metrics=metrics)
        try:
            metrics_port = metrics.serve(settings.metrics_port)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on port {settings.metrics_port}: "
                              f"{exc.strerror or exc}") from None
    relabeler = relabeler_from(settings, conn, limiter, stop, counters, wrap)

    consumer = QueueConsumer(
        link, names,
        QueueOptions(spec.consumer, settings.claim_idle, settings.max_deliveries,
                     batch=senders_from(settings), until_empty=spec.until_empty),
        rules_from(settings), stop, report, count=metrics.job if metrics else None,
    )
    # Of run's safety rails, a stream keeps the run of 401/403 only: a continuous feed has no
    # first rows for a canary, and a share of failures (snapshots deleted since) is no sign of
    # wrong settings. The jobs not started go back to the stream for a consumer that can.
    safety = safety_from(settings, stop, SafetyRules(
        max_failure_rate=1.0, max_consecutive_auth_failures=settings.max_consecutive_auth_failures))
    engine = engine_from(settings, consumer.rows(), relabeler, [consumer], stop, sizing,
                         on_terminal, on_result=safety.observe)

    def on_signal() -> None:
        # Stopping: Redis gets the grace period to come back, not the whole --redis-wait.
        link.give_up_at = time.monotonic() + settings.grace

    upkeep = [asyncio.create_task(_heartbeat(consumer, settings.claim_idle))]
    if learning:
        upkeep.append(asyncio.create_task(learning.run()))
    if metrics:
        upkeep.append(asyncio.create_task(_update_metrics(metrics, link, names, shared)))
    log.info("consumer start", redis=link.url, stream=names.stream, group=names.group,
             consumer=spec.consumer, results=names.results, dead=names.dead,
             until_empty=spec.until_empty, endpoint=conn.endpoint,
             endpoint_from=conn.endpoint_origin, path_family=conn.family, rate=as_written(settings.rate),
             shared_rate=as_written(shared_rate), shared_learning=learning is not None,
             concurrency=settings.concurrency,
             claim_idle_s=settings.claim_idle, max_deliveries=settings.max_deliveries,
             metrics_port=metrics_port, report=spec.report, auth=conn.auth.name)
    try:
        ran = await execute(engine, stop, on_signal)
    finally:
        for task in upkeep:
            task.cancel()
        # Bounded: a task stuck in a Redis call that ignores its cancellation must not keep the
        # consumer from exiting (the jobs it held are acknowledged or claimed either way).
        await asyncio.wait(upkeep, timeout=UPKEEP_STOP)
        await consumer.leave()
    failure = consumer.failure or ran.fatal
    # A stop (credentials refused mid-run, a run of 401/403) is exit 3, as in run.
    code = _fatal(failure) if failure is not None else exit_code(ran, problems=False)
    log.info("summary", **ran.summary.as_fields(), consumer=spec.consumer, exit_code=code)
    return code


def _fatal(exc: BaseException) -> int:
    if isinstance(exc, RedisUnavailable):
        message = (f"{exc}; the jobs held here were not acknowledged: another consumer takes "
                   "them over after --claim-idle")
    elif isinstance(exc, RedisLost):
        message = (f"{exc}; the jobs held here cannot be acknowledged (the local report, if "
                   "any, says what was done): queue them again")
    else:
        message = f"cannot record results: {exc}"
    log.error("consumer stopped", error=message)
    print(f"snaprelabel consume: error: {SECRETS.redact(message)}", file=sys.stderr)
    return exitcodes.FATAL


async def _heartbeat(consumer: QueueConsumer, claim_idle: float) -> None:
    next_sweep = time.monotonic()
    while True:
        await asyncio.sleep(claim_idle / 4)
        honour_lost_cancellation()
        with suppress(Exception):  # Redis down: the link's callers report it; try again later
            await consumer.heartbeat()
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + SWEEP_EVERY
                await consumer.sweep(max(SWEEP_IDLE, 10 * claim_idle))


async def _update_metrics(metrics: Metrics, link: RedisLink, names: QueueNames,
                          shared: SharedLimiter | None) -> None:
    while True:
        honour_lost_cancellation()
        status = None
        with suppress(Exception):
            status = await read_status(link.client, names)
        metrics.update(status, status is not None and link.up,
                       shared is not None and shared.fallback is not None)
        await asyncio.sleep(UPKEEP_EVERY)
