"""The snapshot API over one aiohttp session: one HTTP exchange per call, never raising for
network trouble. Retrying is the caller's business (worker.relabel)."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp

from .. import USER_AGENT
from ..errors import SnaprelabelError
from ..fastpath import dumps, loads
from .auth import Auth, AuthError
from .errors import (
    TRANSIENT_STATUSES,
    ErrorInfo,
    describe_error,
    is_redirect,
    parse_retry_after,
    redirect_error,
    server_second,
)
from .paths import collection_path, snapshot_path

REQUEST_ID_HEADERS = ("X-Openstack-Request-Id", "X-Request-Id", "X-Compute-Request-Id")
# How much of an answer is read (bytes, after decompression); past that the rest is left unread
# and the exchange fails. A snapshot's view is a few KB; a listing page of 1000 a few MB.
SNAPSHOT_ANSWER_LIMIT = 1 << 20
LISTING_ANSWER_LIMIT = 16 << 20
# An error answer is read this far only: enough for its message, and its status says the rest
# (a proxy's error page may be big, and is still a 503).
ERROR_ANSWER_LIMIT = 64 << 10


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
    server_second: int | None = None  # of the server's clock, from its Date header

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
        # aiohttp's own verified context, made at its import: loading the system CAs a second
        # time costs start-up (docs/design.md#start-up).
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
        if not answer.ok:
            return answer
        if not isinstance(answer.payload, dict):
            # A 2xx whose body we could not read (cut off, not JSON, no snapshot object): PUT is
            # idempotent, so retry.
            answer.payload = None
            answer.error = ErrorInfo("unreadable_response", "the answer had no snapshot object")
            answer.transient = True
            return answer
        mismatch = answer_mismatch(answer.payload, snapshot_id, body["snapshot"])
        if mismatch:
            # The server said something else than was asked: not a confirmation, and asking
            # again would not make it one.
            answer.error = ErrorInfo("answer_mismatch", mismatch)
        return answer

    async def get(self, project_id: str, snapshot_id: str) -> Answer:
        return await self._exchange("GET", self.snapshot_url(project_id, snapshot_id), b"")

    async def list_page(
        self, project_id: str, limit: int = 1000, marker: str | None = None, **filters: str
    ) -> tuple[Answer, list[dict[str, Any]]]:
        query = {"limit": str(limit), **({"marker": marker} if marker else {}), **filters}
        url = f"{self.endpoint}{collection_path(self.family, project_id)}/detail?{urlencode(query)}"
        answer = await self._exchange("GET", url, b"", key="snapshots", limit=LISTING_ANSWER_LIMIT)
        if answer.ok and not isinstance(answer.payload, list):
            # A 2xx without a readable list must not pass for an empty (last) page.
            answer.error = ErrorInfo("unreadable_response", "the answer had no snapshots list")
            answer.transient = True
        return answer, (answer.payload or []) if answer.ok else []

    async def _exchange(self, method: str, url: str, data: bytes, key: str = "snapshot",
                        limit: int = SNAPSHOT_ANSWER_LIMIT) -> Answer:
        sent_at = time.monotonic()
        try:
            headers = await self.auth.headers(method, url, data)
            if data:
                headers = {**headers, "Content-Type": "application/json"}
            # Never follow a redirect: it would carry the credentials (X-Auth-Token,
            # X-Security-Token: aiohttp strips only Authorization) to wherever it points.
            async with self.session.request(method, url, data=data or None, headers=headers,
                                            allow_redirects=False) as resp:
                status = resp.status
                raw, whole = (b"", True) if is_redirect(status) else await read_at_most(
                    resp, limit if 200 <= status < 300 else ERROR_ANSWER_LIMIT)
        except (TimeoutError, aiohttp.ClientError) as exc:
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
        answer = Answer(status, request_id=_request_id(resp.headers), sent_at=sent_at,
                        latency=time.monotonic() - sent_at, server_second=server_second(resp.headers.get("Date")))
        if is_redirect(status):
            answer.error = redirect_error(url, resp.headers.get("Location"))
        elif 200 <= status < 300:
            if whole:
                answer.payload = _object_under(raw, key)
            else:
                answer.error = too_large(limit)
        else:
            answer.error = describe_error(status, raw)
            answer.request_id = answer.request_id or answer.error.request_id
            answer.retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            answer.transient = status in TRANSIENT_STATUSES
        return answer


async def read_at_most(resp: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """The body (decompressed), up to `limit` bytes, and whether that was all of it. A longer
    body is not read further (memory stays flat whatever the server sends, a gzip bomb
    included) and its connection is closed, never reused."""
    length = resp.content_length
    if length is not None and length <= limit and resp.headers.get("Content-Encoding", "identity") == "identity":
        # The usual answer: its size is stated, small and not compressed, so one read is bounded.
        return await resp.read(), True
    body = bytearray()
    while len(body) <= limit:
        chunk = await resp.content.read(limit + 1 - len(body))
        if not chunk:
            return bytes(body), True
        body += chunk
    resp.close()
    return bytes(body[:limit]), False


def too_large(limit: int) -> ErrorInfo:
    # Not transient: a snapshot's view or a page never comes near the bound, so this server (or
    # a proxy before it) would answer the same again.
    return ErrorInfo("answer_too_large",
                     f"the answer is too large (over {limit >> 20} MiB): not read further")


def _object_under(raw: bytes, key: str) -> Any:
    try:
        payload = loads(raw)
    except ValueError:
        return None
    return payload.get(key) if isinstance(payload, dict) else None


def answer_mismatch(view: dict[str, Any], snapshot_id: str, sent: dict[str, Any]) -> str | None:
    """What in a PUT's answer contradicts the request, if anything: another snapshot's id, or
    none (Cinder and EVS both answer with the snapshot's view, id included); another name or
    description than was sent, where the answer shows them (as name/description, or
    display_name/display_description in the older view). Cinder strips leading and trailing
    white space from both: a stripped echo confirms."""
    answered = view.get("id")
    if not isinstance(answered, str) or answered.lower() != snapshot_id.lower():
        about = "no snapshot id" if answered is None else f"snapshot {_shown(answered)}"
        return f"the answer gives {about}, not {snapshot_id}: it does not confirm the change"
    for field, wanted in sent.items():
        for shown in (field, f"display_{field}"):
            if shown in view:
                echoed = view[shown]
                if echoed not in (wanted, wanted.strip()) and not (echoed is None and not wanted.strip()):
                    return (f"the answer gives {field} {_shown(echoed)} where {_shown(wanted)} was sent: "
                            "it does not confirm the change")
                break
    return None


def _shown(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ListingError(SnaprelabelError):
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
            return str(value)[:200]  # a server's header: bounded like its error messages
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
    if isinstance(exc, aiohttp.ClientResponseError):
        # aiohttp's message quotes the offending bytes: ours does not.
        return ErrorInfo("invalid_answer", "the answer broke the rules of HTTP (malformed or oversized "
                                           "headers, or more body than announced)")
    # Class name only: messages of some exceptions echo request details.
    return ErrorInfo("connection_error", type(exc).__name__)
