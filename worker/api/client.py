"""The snapshot API over one aiohttp session: one HTTP exchange per call, never raising for
network trouble. Retrying is the caller's business (worker.relabel)."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from .. import USER_AGENT
from ..fastpath import dumps, loads
from .auth import Auth, AuthError
from .errors import TRANSIENT_STATUSES, ErrorInfo, describe_error, parse_retry_after
from .paths import collection_path, snapshot_path

REQUEST_ID_HEADERS = ("X-Openstack-Request-Id", "X-Request-Id", "X-Compute-Request-Id")


@dataclass(slots=True)
class Answer:
    """What one exchange gave: the payload on success (the object under the answer's key), else
    an error and whether to retry."""

    status: int | None  # None when no HTTP answer arrived (reset, timeout, refused)
    payload: Any = None  # the answer's object under its key: a snapshot, or a list of them
    error: ErrorInfo | None = None
    request_id: str | None = None
    retry_after: float | None = None
    transient: bool = False
    sent_at: float = 0.0
    latency: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class HttpSettings:
    concurrency: int = 16
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 60.0
    verify_tls: bool = True
    ca_bundle: str | None = None


def make_session(http: HttpSettings) -> aiohttp.ClientSession:
    """One session for the whole job. The connector is bounded to the number of senders, so a
    request never waits for a pooled connection inside its own timeout."""
    if not http.verify_tls:
        tls: ssl.SSLContext | bool = False
    elif http.ca_bundle:
        tls = ssl.create_default_context(cafile=http.ca_bundle)
    else:
        # aiohttp's own verified context (ssl.create_default_context(), made at its import):
        # loading the system CAs a second time cost 50 ms of start-up (bench/RESULTS.md).
        tls = True
    connector = aiohttp.TCPConnector(
        limit=http.concurrency, limit_per_host=http.concurrency, ssl=tls, ttl_dns_cache=300
    )
    timeout = aiohttp.ClientTimeout(
        total=http.total_timeout, sock_connect=http.connect_timeout, sock_read=http.read_timeout
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        raise_for_status=False,
    )
    # aiohttp silently resends an idempotent request once when a connection drops. Every attempt
    # must take a rate-limit slot and be counted, so retries are ours alone. (aiohttp's own test
    # client turns it off the same way; there is no public switch.)
    if hasattr(session, "_retry_connection"):
        session._retry_connection = False
    return session


class SnapshotApi:
    def __init__(
        self, session: aiohttp.ClientSession, endpoint: str, family: str, auth: Auth
    ) -> None:
        self.session = session
        self.endpoint = endpoint.rstrip("/")
        self.family = family
        self.auth = auth

    def snapshot_url(self, project_id: str, snapshot_id: str) -> str:
        return self.endpoint + snapshot_path(self.family, project_id, snapshot_id)

    async def update(self, project_id: str, snapshot_id: str, body: dict[str, Any]) -> Answer:
        data = dumps(body)
        answer = await self._exchange("PUT", self.snapshot_url(project_id, snapshot_id), data)
        if answer.ok and not isinstance(answer.payload, dict):
            # A 2xx whose body we could not read (cut off, not JSON, no snapshot object): PUT is
            # idempotent, so retry.
            answer.error = ErrorInfo("unreadable_response", "the answer had no snapshot object")
            answer.transient = True
        return answer

    async def get(self, project_id: str, snapshot_id: str) -> Answer:
        return await self._exchange("GET", self.snapshot_url(project_id, snapshot_id), b"")

    async def list_page(
        self, project_id: str, limit: int = 1000, marker: str | None = None, **filters: str
    ) -> tuple[Answer, list[dict[str, Any]]]:
        query = {"limit": str(limit), **({"marker": marker} if marker else {}), **filters}
        url = f"{self.endpoint}{collection_path(self.family, project_id)}/detail?{urlencode(query)}"
        answer = await self._exchange("GET", url, b"", key="snapshots")
        if answer.ok and not isinstance(answer.payload, list):
            # A 2xx without a readable list must not pass for an empty (last) page.
            answer.error = ErrorInfo("unreadable_response", "the answer had no snapshots list")
            answer.transient = True
        return answer, (answer.payload or []) if answer.ok else []  # type: ignore[return-value]

    async def iter_snapshots(
        self, project_id: str, acquire: Any = None, limit: int = 1000, marker: str | None = None,
        **filters: str
    ) -> AsyncIterator[dict[str, Any]]:
        """Every snapshot of the project (after `marker`, to go on where a listing stopped), page
        by page. `acquire` is awaited before each page so listing shares the job's rate limit.
        Raises ListingError."""
        while True:
            if acquire is not None:
                await acquire()
            answer, page = await self.list_page(project_id, limit, marker, **filters)
            if not answer.ok:
                raise ListingError(answer)
            for item in page:
                yield item
            if len(page) < limit:
                return
            marker = page[-1]["id"]

    async def _exchange(self, method: str, url: str, data: bytes, key: str = "snapshot") -> Answer:
        sent_at = time.monotonic()
        try:
            headers = await self.auth.headers(method, url, data)
            if data:
                headers = {**headers, "Content-Type": "application/json"}
            async with self.session.request(method, url, data=data or None, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
                request_id = _request_id(resp.headers)
                retry_after = resp.headers.get("Retry-After")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return Answer(
                None,
                error=_network_error(exc),
                transient=True,
                sent_at=sent_at,
                latency=time.monotonic() - sent_at,
            )
        except AuthError as exc:  # no credentials to send (the identity service failed)
            return Answer(None, error=ErrorInfo("auth_failed", str(exc)), transient=exc.transient,
                          sent_at=sent_at, latency=time.monotonic() - sent_at)
        latency = time.monotonic() - sent_at
        if 200 <= status < 300:
            try:
                payload = loads(raw)
                item = payload.get(key) if isinstance(payload, dict) else None
            except ValueError:
                item = None
            return Answer(status, payload=item, request_id=request_id, sent_at=sent_at, latency=latency)
        error = describe_error(status, raw)
        return Answer(
            status,
            error=error,
            request_id=request_id or error.request_id,
            retry_after=parse_retry_after(retry_after),
            transient=status in TRANSIENT_STATUSES,
            sent_at=sent_at,
            latency=latency,
        )


class ListingError(Exception):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        error = answer.error
        super().__init__(
            f"listing snapshots failed: HTTP {answer.status or '-'} "
            f"{error.code if error else ''}: {error.message if error else ''}".strip()
        )


def _request_id(headers: Any) -> str | None:
    for name in REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def _network_error(exc: BaseException) -> ErrorInfo:
    if isinstance(exc, asyncio.TimeoutError):
        return ErrorInfo("timeout", "no answer within the timeout")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return ErrorInfo("truncated_response", "the answer was cut off")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return ErrorInfo("connection_closed", "the server closed the connection without an answer")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return ErrorInfo("connection_failed", f"cannot connect to {exc.host}:{exc.port}")
    # Class name only: messages of some exceptions echo request details.
    return ErrorInfo("connection_error", type(exc).__name__)
