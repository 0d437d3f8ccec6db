"""Temporary AK/SK from the instance metadata service: on a Huawei Cloud ECS (or a CCE pod) whose
server has an agency, `GET {metadata}/openstack/latest/securitykey` hands out an access key, its
secret and a security token that expire. Requests are signed with them as with any temporary
AK/SK (worker/api/aksk.py, the token in X-Security-Token), and the keys are fetched again before
they expire.

What huaweicloudsdkcore does, and this follows (read in huaweicloud/huaweicloud-sdk-python-v3,
huaweicloud-sdk-core/huaweicloudsdkcore/auth/internal.py `MetadataAccessor` and
credentials.py `process_sts` / `_is_expired`, August 2026):

- the answer is `{"credential": {"access", "secret", "securitytoken", "expires_at"}}`,
  expires_at like `2026-12-02T13:00:00.000000Z` (UTC);
- before the GET, `PUT /meta-data/latest/api/token` (X-Metadata-Token-Ttl-Seconds: 21600) asks for
  a session token sent as X-Metadata-Token; 404, 405 or 503 there means the service does not use
  them; a 401 on the GET (unless it says "Please configure Cloud Service Agency first") asks for
  a new session token once;
- 3-second connect and read timeouts;
- the keys are fetched again once less than 40 minutes of their life is left.

Unlike the SDK (which compares expires_at with the local clock), the life left is counted by the
metadata service's own clock (its Date header) and from when the request left, so a machine
whose clock is off neither takes valid keys for expired ones nor keeps expired ones. Renewal is
single-flight and happens in the background while the current keys are still good; when the
service fails then, the current keys stay in use (one warning); once they have expired and the
service still fails, the job stops with one line.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ..logs import log
from ..redaction import SECRETS
from .aksk import JSON, AccessKey, sign
from .auth import AuthError, Stopper
from .client import _network_error, read_at_most
from .errors import TRANSIENT_STATUSES, describe_error, is_redirect
from .single_flight import SingleFlight

DEFAULT_METADATA_URL = "http://169.254.169.254"
SECURITY_KEY_PATH = "/openstack/latest/securitykey"
SESSION_TOKEN_PATH = "/meta-data/latest/api/token"
SESSION_TOKEN_HEADER = "X-Metadata-Token"
SESSION_TOKEN_TTL_HEADER = "X-Metadata-Token-Ttl-Seconds"
SESSION_TOKEN_TTL = 6 * 3600  # the SDK's
NO_AGENCY = "Please configure Cloud Service Agency first"  # the service's words without an agency
# Renew once this much of the keys' life is left (the SDK's 40 minutes), but never before three
# quarters of what was left when they came: short-lived keys are not fetched all the time.
RENEW_AHEAD = 40 * 60.0
# ...and stop signing with them this close to their expiry: a request signed now must still be
# good when the gateway checks it.
STALE_AHEAD = 60.0
# Keys said to live longer are renewed after this long anyway: a Date header far in the past
# must not make keys look good for years (Huawei's live a day).
MAX_LIFE = 2 * 24 * 3600.0
# The answer is four short strings: anything larger is not a security key.
ANSWER_LIMIT = 16 << 10
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=10.0, sock_connect=3.0, sock_read=3.0)
PROBE_TIMEOUT = 1.0  # `auto` with nothing configured: is there a metadata service at all?
# Once the keys have expired, the service is asked this many times more (pausing so long) before
# the job stops: a blip of a second must not end a long job.
EXPIRED_RETRY_PAUSES = (0.5, 1.0, 2.0)
QUIET_AFTER_FAILURE = 1.0  # seconds between asks while stale keys are still in use


_HEADER_VALUE = re.compile(r"[\x21-\x7e]{1,8192}")  # visible ASCII: what a header may carry


def security_key_url(base: str) -> str:
    return base.rstrip("/") + SECURITY_KEY_PATH


@dataclass(frozen=True)
class TemporaryKey:
    access_key: str
    secret_key: str = field(repr=False)
    security_token: str = field(repr=False)
    expires_at: datetime  # as the metadata service said
    life_left: float  # seconds, by the metadata service's clock, when it answered
    requested: float  # time.monotonic() when it was asked for: its life counts from there
    received: float  # time.monotonic() when it arrived

    @property
    def expires(self) -> float:
        """Monotonic time of expiry (early by the request's round trip, never late)."""
        return self.requested + self.life_left

    @property
    def renew_at(self) -> float:
        return self.requested + max(self.life_left - RENEW_AHEAD, self.life_left * 3 / 4)

    @property
    def stale_at(self) -> float:
        return self.expires - min(STALE_AHEAD, self.life_left / 10)

    def signing_key(self, project_id: str | None) -> AccessKey:
        return AccessKey(self.access_key, self.secret_key, project_id, self.security_token)


def parse_security_key(raw: bytes, server_now: datetime | None, url: str, requested: float,
                       received: float) -> TemporaryKey:
    """The answer's keys; AuthError (one line, naming no secret) when it is not a security key
    or has already expired. `server_now`: the answer's Date, else None (this machine's clock)."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise AuthError(f"the metadata service {url} answered with something that is not JSON") from None
    credential = data.get("credential") if isinstance(data, dict) else None
    if not isinstance(credential, dict):
        raise AuthError(f"the metadata service {url} answered without a 'credential' object")
    values = {name: credential.get(name) for name in ("access", "secret", "securitytoken", "expires_at")}
    missing = [name for name, value in values.items() if not isinstance(value, str) or not value.strip()]
    if missing:
        raise AuthError(f"the metadata service {url} answered without {', '.join(missing)} in its credential")
    access, secret, token = (str(values[n]).strip() for n in ("access", "secret", "securitytoken"))
    SECRETS.add(secret)
    SECRETS.add(token)
    if not (_HEADER_VALUE.fullmatch(access) and len(access) <= 128 and "," not in access):
        raise AuthError(f"the metadata service {url} answered with an access key that is not one")
    if not _HEADER_VALUE.fullmatch(token):  # sent as X-Security-Token: no CR/LF smuggled in
        raise AuthError(f"the metadata service {url} answered with a security token that cannot be sent")
    try:
        expires = _utc(datetime.fromisoformat(str(values["expires_at"]).strip().replace("Z", "+00:00")))
    except ValueError:
        raise AuthError(f"the metadata service {url} answered with an expires_at that is not a time") from None
    server_now, clock = _server_now(server_now)
    life_left = min((expires - server_now).total_seconds(), MAX_LIFE)
    if life_left <= 0:
        # Transient: the service may hand out fresh keys in a moment; retried after a backoff.
        raise AuthError(f"the metadata service {url} handed out keys already expired: they expired at "
                        f"{expires.isoformat()}, {-life_left:.0f} s before now by {clock}", transient=True)
    return TemporaryKey(access, secret, token, expires, life_left, requested, received)


def _server_now(date: datetime | None) -> tuple[datetime, str]:
    """Now by the metadata service's clock, and which clock that was. Date has whole seconds:
    when this machine's clock falls within that second, it is the better measure; when it does
    not, the clocks differ and the service's is taken at the end of its second (never late)."""
    local = datetime.now(UTC)
    if date is None:
        return local, "this machine's clock (the answer had no Date)"
    if date <= local < date + timedelta(seconds=1):
        return local, "this machine's clock (the metadata service's agrees)"
    return date + timedelta(seconds=1), "the metadata service's clock (its Date header)"


def _utc(when: datetime) -> datetime:
    return when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)


def _server_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return _utc(parsedate_to_datetime(value))
    except (TypeError, ValueError, IndexError):
        return None


class MetadataService:
    """The HTTP exchanges with the metadata service. Redirects are never followed (the answer
    holds secrets, and a metadata service has no reason to send anyone elsewhere)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.url = security_key_url(base_url)
        self._session_token: str | None = None
        self._session_token_until = 0.0  # monotonic; 0: ask (again) before the next GET
        self.fetches = 0

    async def fetch(self) -> TemporaryKey:
        """One set of keys. Raises AuthError (transient for network trouble, 429 and 5xx)."""
        self.fetches += 1
        if time.monotonic() >= self._session_token_until:
            await self._renew_session_token()
        requested = time.monotonic()
        status, raw, date = await self._get()
        if status == 401 and NO_AGENCY.encode() not in raw:
            await self._renew_session_token(required=True)
            requested = time.monotonic()
            status, raw, date = await self._get()
        if status != 200:
            error = describe_error(status, raw)
            hint = " (does this server have an agency? ECS console: Management > Agency)" if (
                NO_AGENCY.encode() in raw or status in (401, 403, 404)) else ""
            raise AuthError(f"the metadata service {self.url} answered HTTP {status}: {error.message}{hint}",
                            transient=status in TRANSIENT_STATUSES)
        return parse_security_key(raw, _server_date(date), self.url, requested, time.monotonic())

    async def _get(self) -> tuple[int, bytes, str | None]:
        headers = {SESSION_TOKEN_HEADER: self._session_token} if self._session_token else {}
        return await self._call("GET", self.url, headers)

    async def _renew_session_token(self, required: bool = False) -> None:
        url = self.base_url + SESSION_TOKEN_PATH
        status, raw, _ = await self._call("PUT", url, {SESSION_TOKEN_TTL_HEADER: str(SESSION_TOKEN_TTL)})
        token = raw.decode("ascii", "replace").strip()
        if status == 200 and token:
            SECRETS.add(token)
            if not _HEADER_VALUE.fullmatch(token):  # it goes into a header: no CR/LF smuggled in
                raise AuthError(f"the metadata service {url} answered with a session token that cannot be sent")
            self._session_token = token
            self._session_token_until = time.monotonic() + SESSION_TOKEN_TTL * 0.9
        elif status in (404, 405, 503) and not required:
            self._session_token = None  # this service does not use session tokens
            self._session_token_until = time.monotonic() + SESSION_TOKEN_TTL
        else:
            raise AuthError(f"the metadata service {url} refused a session token: HTTP {status}: "
                            f"{describe_error(status, raw).message}", transient=status in TRANSIENT_STATUSES)

    async def _call(self, method: str, url: str, headers: dict[str, str]) -> tuple[int, bytes, str | None]:
        try:
            async with self.session.request(method, url, headers=headers, allow_redirects=False,
                                            timeout=FETCH_TIMEOUT) as resp:
                if is_redirect(resp.status):
                    raise AuthError(f"the metadata service {url} answered HTTP {resp.status} (a redirect): "
                                    "never followed, the answer holds secrets")
                raw, whole = await read_at_most(resp, ANSWER_LIMIT)
                if not whole:
                    raise AuthError(f"the metadata service {url} answered with too large a body "
                                    f"(over {ANSWER_LIMIT >> 10} KiB): not a security key")
                return resp.status, raw, resp.headers.get("Date")
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise AuthError(f"cannot reach the metadata service {url}: {_network_error(exc).message}",
                            transient=True) from None


class MetadataAuth:
    """Signs every request with the current temporary keys, renewed ahead of their expiry."""

    name = "metadata"

    def __init__(self, service: MetadataService, project_id: str | None, stop: Stopper) -> None:
        self.service = service
        self.project_id = project_id
        self._stop = stop
        self._key: TemporaryKey | None = None
        self._renewal = SingleFlight(self._fetch)
        self._quiet_until = 0.0  # after a failed background renewal, wait before the next
        self._failed: str | None = None  # the keys expired and no new ones came: the job stops

    @property
    def key(self) -> TemporaryKey | None:
        return self._key

    async def current(self) -> TemporaryKey:
        """Keys fit to sign with now; waits for new ones only when the current ones are stale."""
        if self._failed is not None:
            raise AuthError(self._failed)
        key = self._key
        if (good := self._renewal.still_good(key, self._quiet_until, self._background_failed)) is not None:
            return good
        if key is None:
            return await self._renewal.wait()  # the first keys: the connection retries
        now = time.monotonic()
        if now < key.expires and now < self._quiet_until:
            return key  # stale, the service failed a moment ago: not asked at every request
        error = ""
        for pause in (0.0, *EXPIRED_RETRY_PAUSES):
            await asyncio.sleep(pause)
            try:
                return await self._renewal.wait()
            except AuthError as exc:
                error = str(exc)
                if time.monotonic() < key.expires:
                    # Stale but not expired: still better than nothing, the gateway decides.
                    self._quiet_until = time.monotonic() + QUIET_AFTER_FAILURE
                    return key
                if not exc.transient:
                    break
        self._failed = (f"the temporary keys from the metadata service expired at "
                        f"{key.expires_at.isoformat()} and no new ones came: {error}")
        self._stop.request(f"credentials lost: {self._failed}")
        raise AuthError(self._failed)

    async def headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        key = await self.current()
        return sign(key.signing_key(self.project_id), method, url, {"Content-Type": JSON} if body else {}, body)

    async def refresh_after_401(self, sent_at: float) -> bool:
        """A 401 is worth one retry only with other keys: the same ones would be refused again
        (and count toward the access key's lockout)."""
        key = self._key
        if self._failed is not None or key is None:
            return False
        if key.received > sent_at:
            return True  # renewed since that request left: just retry
        try:
            fresh = await self._renewal.wait()
        except AuthError:
            fresh = key
        if fresh.access_key != key.access_key or fresh.security_token != key.security_token:
            return True
        self._stop.request("credentials refused: the API refused the temporary AK/SK from the metadata "
                           "service (HTTP 401), and the service has no other keys")
        return False

    async def close(self) -> None:
        await self._renewal.close()

    async def _fetch(self) -> TemporaryKey:
        key = await self.service.fetch()
        self._key = key
        log.debug("temporary keys obtained", access_key=key.access_key, expires_at=key.expires_at.isoformat(),
                  life_left_s=round(key.life_left, 1))
        return key

    def _background_failed(self, exc: BaseException) -> None:
        key = self._key
        self._quiet_until = time.monotonic() + min(30.0, key.life_left / 20 if key else 1.0)
        expiry = key.expires_at.isoformat() if key else "?"
        log.warning("temporary keys not renewed; the current ones stay in use until they expire",
                    expires_at=expiry, error=str(exc))


def probe(base_url: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """`auto` with nothing configured: None when the metadata service hands out keys here, else
    why not (for the no-credentials message). Blocking, bounded by `timeout` per step: it runs
    once, before anything else, and only when no other credentials are set."""
    parts = urlsplit(security_key_url(base_url))
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection: Any = connection_class(parts.hostname or "", parts.port, timeout=timeout)
    try:
        connection.request("GET", parts.path, headers={"Accept": "application/json"})
        resp = connection.getresponse()
        body = resp.read(ANSWER_LIMIT)  # dropped: the job fetches its own keys
        status = resp.status
    except (OSError, http.client.HTTPException):
        return f"no metadata service answered at {base_url} within {timeout:g} s"
    finally:
        connection.close()
    if status == 401 and NO_AGENCY.encode() not in body:
        return None  # it wants a session token first: a metadata service all the same
    if status != 200:
        return f"the metadata service at {base_url} answered HTTP {status} (no agency on this server?)"
    return None
