"""Password and application-credential authentication against Keystone v3 (OpenStack) or Huawei
IAM, which speaks the same protocol: `POST {auth_url}/v3/auth/tokens` gives a project-scoped token
in the X-Subject-Token header, its expiry, its roles and the service catalog.

The token is renewed ahead of its expiry in the background (senders keep the current one
meanwhile), and at once after a 401. Renewal is single-flight: one token request, however many
senders are waiting. A refused password is remembered and never sent again: identity services
lock accounts after a few failed logins.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp

from ..logs import log
from ..redaction import SECRETS
from .auth import AuthError, Stopper
from .client import ERROR_ANSWER_LIMIT, _network_error, read_at_most
from .errors import TRANSIENT_STATUSES, ErrorInfo, describe_error, is_redirect, redirect_error
from .single_flight import SingleFlight

_VERSION_SUFFIX = re.compile(r"/v(?:3|2\.0)/?$")
# Renew in the background once this much of the token's life is left (keystoneauth renews
# within 120 s of expiry; a quarter of the life, for short-lived tokens)...
RENEW_AHEAD = 300.0
# ...and stop sending a token this close to its expiry, whatever the clocks say.
STALE_AHEAD = 120.0
# A token's body holds the service catalog: large clouds have big ones, but not this big.
TOKEN_ANSWER_LIMIT = 8 << 20


def answer_text(status: int | None, error: ErrorInfo | None) -> str:
    """'HTTP 401: message', with the error code when the body named one."""
    head = f"HTTP {status}" if status else "no answer"
    if error is None:
        return head
    code = "" if error.code == f"http_{status}" else f" {error.code}"
    return f"{head}{code}: {error.message}"


def identity_url(auth_url: str, path: str) -> str:
    """`auth_url` as users give it (with or without /v3, as OS_AUTH_URL usually has it)."""
    base = _VERSION_SUFFIX.sub("", auth_url.rstrip("/"))
    return f"{base}/v3/{path}"


def _domain(domain_id: str | None, name: str | None) -> dict[str, str]:
    if domain_id:
        return {"id": domain_id}
    return {"name": name} if name else {"id": "default"}


@dataclass(frozen=True)
class PasswordLogin:
    auth_url: str
    password: str = field(repr=False)
    username: str | None = None
    user_id: str | None = None
    user_domain_name: str | None = None
    user_domain_id: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    project_domain_name: str | None = None
    project_domain_id: str | None = None

    @property
    def tokens_url(self) -> str:
        return identity_url(self.auth_url, "auth/tokens")

    def request_body(self) -> dict[str, Any]:
        user_domain = _domain(self.user_domain_id, self.user_domain_name)
        user: dict[str, Any] = (
            {"id": self.user_id} if self.user_id else {"name": self.username, "domain": user_domain}
        )
        user["password"] = self.password
        if self.project_id:
            project: dict[str, Any] = {"id": self.project_id}
        else:
            project_domain = (_domain(self.project_domain_id, self.project_domain_name)
                              if self.project_domain_id or self.project_domain_name else user_domain)
            project = {"name": self.project_name, "domain": project_domain}
        return {"auth": {"identity": {"methods": ["password"], "password": {"user": user}},
                         "scope": {"project": project}}}

    def describe(self) -> str:
        if self.user_id:
            who = f"user id {self.user_id}"
        else:
            who = f"user {self.username!r} (domain {self.user_domain_id or self.user_domain_name or 'default'})"
        scope = f"project id {self.project_id}" if self.project_id else f"project {self.project_name!r}"
        return f"{who}, {scope}"


@dataclass(frozen=True)
class ApplicationCredentialLogin:
    """An application credential: by id, or by name and its user (name + domain, or id). It is
    scoped to its own project, so the request names no scope (Keystone refuses one)."""

    auth_url: str
    secret: str = field(repr=False)
    credential_id: str | None = None
    credential_name: str | None = None
    username: str | None = None
    user_id: str | None = None
    user_domain_name: str | None = None
    user_domain_id: str | None = None

    @property
    def tokens_url(self) -> str:
        return identity_url(self.auth_url, "auth/tokens")

    def request_body(self) -> dict[str, Any]:
        credential: dict[str, Any]
        if self.credential_id:
            credential = {"id": self.credential_id}
        else:
            user: dict[str, Any] = ({"id": self.user_id} if self.user_id else
                                    {"name": self.username,
                                     "domain": _domain(self.user_domain_id, self.user_domain_name)})
            credential = {"name": self.credential_name, "user": user}
        credential["secret"] = self.secret
        return {"auth": {"identity": {"methods": ["application_credential"],
                                      "application_credential": credential}}}

    def describe(self) -> str:
        if self.credential_id:
            return f"application credential id {self.credential_id}"
        who = (f"user id {self.user_id}" if self.user_id else
               f"user {self.username!r} (domain {self.user_domain_id or self.user_domain_name or 'default'})")
        return f"application credential {self.credential_name!r} of {who}"


class Login(Protocol):
    """What KeystoneAuth needs of a way to log in (PasswordLogin, ApplicationCredentialLogin)."""

    @property
    def auth_url(self) -> str: ...

    @property
    def tokens_url(self) -> str: ...

    def request_body(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    expires_at: datetime
    lifetime: float  # seconds, by the server's own clock (expires_at - issued_at)
    requested: float  # time.monotonic() when it was asked for: its life counts from there
    received: float  # time.monotonic() when it arrived
    project_id: str | None = None
    catalog: list[dict[str, Any]] = field(default_factory=list, repr=False)
    roles: tuple[str, ...] = ()  # role names, as the token lists them
    # time.monotonic() at which the server will no longer take it, counted on the safe side;
    # None: requested + lifetime.
    ends: float | None = None
    clock_skew: float | None = None  # seconds the server's clock (Date header) is ahead of ours
    project_name: str | None = None

    def __post_init__(self) -> None:
        if self.ends is None:
            object.__setattr__(self, "ends", self.requested + self.lifetime)

    @property
    def end(self) -> float:
        assert self.ends is not None
        return self.ends

    @property
    def renew_at(self) -> float:
        return self.end - min(RENEW_AHEAD, self.lifetime / 4)

    @property
    def stale_at(self) -> float:
        return self.end - min(STALE_AHEAD, self.lifetime / 10)


def token_end(requested: float, received: float, issued: datetime | None, expires: datetime,
              server_date: datetime | None) -> float:
    """The monotonic moment a token stops working, never later than the server's own clock says.

    The life is the token's own, expires_at - issued_at, by the server's clock. Keystone
    truncates issued_at to the whole second (expires_at = issued_at + TTL), and the token was
    issued after the request left: a whole-second issued_at may stand up to 1 s before the moment
    it names, so the life counts from up to 1 s before the request (at most a quarter of the life:
    a 1-s token would otherwise be dead on arrival, and every request would ask for a new one).
    Without issued_at, the server's clock is read from its Date header (whole seconds too, so 1 s
    is taken off), never from this machine's clock, which may be off by minutes.
    """
    if issued is not None:
        life = (expires - issued).total_seconds()
        truncated = min(1.0, life / 4) if issued.microsecond == 0 else 0.0
        return requested - truncated + life
    if server_date is not None:
        life = (expires - server_date).total_seconds()
        return received + life - min(1.0, life / 4)
    return requested + (expires - datetime.now(UTC)).total_seconds()


def _server_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def request_token(session: aiohttp.ClientSession, login: Login) -> Token:
    """One token request. Raises AuthError (transient for network trouble, 429 and 5xx)."""
    url = login.tokens_url
    requested = time.monotonic()
    body = json.dumps(login.request_body()).encode()
    status, raw, subject, date = await _call(session, "POST", url, body,
                                             {"Content-Type": "application/json"})
    received, server_date = time.monotonic(), _server_date(date)
    if status not in (200, 201):
        hint = ""
        if status == 401:
            hint = (" (check the application credential's id or name, its user and its secret)"
                    if isinstance(login, ApplicationCredentialLogin) else
                    " (check the user, its domain, the password and the project)")
        raise AuthError(
            f"the identity service {url} refused {login.describe()}: "
            f"{answer_text(status, describe_error(status, raw))}{hint}",
            transient=status in TRANSIENT_STATUSES)
    if not subject:
        raise AuthError(f"the identity service {url} answered without a token (no X-Subject-Token)")
    SECRETS.add(subject)
    try:
        data = json.loads(raw)["token"]
        expires = _parse_time(data["expires_at"])
        issued_at = _parse_time(data["issued_at"]) if data.get("issued_at") else None
    except (ValueError, KeyError, TypeError):
        raise AuthError(f"the identity service {url} answered with an unreadable token body") from None
    now = server_date or datetime.now(UTC)
    issued = issued_at or now
    if expires <= issued:
        # Taken as it is, each request would ask for a new token: the identity service flooded
        # with logins. Transient: retried after a backoff, like a 503.
        clock = ("" if issued_at else " (by the server's Date header)" if server_date
                 else " (by this machine's clock: is it right?)")
        raise AuthError(f"the identity service {url} issued a token already expired: it expires at "
                        f"{expires.isoformat()}, issued at {issued.isoformat()}{clock}", transient=True)
    project = data.get("project") if isinstance(data.get("project"), dict) else {}
    catalog = data.get("catalog") if isinstance(data.get("catalog"), list) else []
    roles = data.get("roles") if isinstance(data.get("roles"), list) else []
    names = tuple(str(r["name"]) for r in roles if isinstance(r, dict) and r.get("name"))
    skew = (server_date - datetime.now(UTC)).total_seconds() if server_date else None
    return Token(subject, expires, (expires - issued).total_seconds(), requested, received,
                 project.get("id"), catalog, names,
                 token_end(requested, received, issued_at, expires, server_date), skew,
                 project.get("name"))


async def fetch_catalog(session: aiohttp.ClientSession, auth_url: str, token: str) -> list[dict[str, Any]]:
    """The service catalog of a token the user already has (`GET /v3/auth/catalog`)."""
    url = identity_url(auth_url, "auth/catalog")
    status, raw, _, _ = await _call(session, "GET", url, b"", {"X-Auth-Token": token})
    if status != 200:
        raise AuthError(f"the identity service {url} refused the token: "
                        f"{answer_text(status, describe_error(status, raw))}",
                        transient=status in TRANSIENT_STATUSES)
    try:
        catalog = json.loads(raw)["catalog"]
    except (ValueError, KeyError, TypeError):
        catalog = None
    if not isinstance(catalog, list):
        raise AuthError(f"the identity service {url} answered with an unreadable catalog")
    return catalog


async def _call(session: aiohttp.ClientSession, method: str, url: str, body: bytes,
                headers: dict[str, str]) -> tuple[int, bytes, str | None, str | None]:
    """One exchange with the identity service: status, body, X-Subject-Token and Date. A redirect
    is never followed (a 307 would post the password wherever it points) and is final, like an
    answer too large to read."""
    try:
        async with session.request(method, url, data=body or None, headers=headers,
                                   allow_redirects=False) as resp:
            if is_redirect(resp.status):
                error = redirect_error(url, resp.headers.get("Location"))
                raise AuthError(f"the identity service {url} answered HTTP {resp.status}: {error.message}")
            success = 200 <= resp.status < 300
            raw, whole = await read_at_most(resp, TOKEN_ANSWER_LIMIT if success else ERROR_ANSWER_LIMIT)
            if success and not whole:
                raise AuthError(f"the identity service {url} answered with too large a body "
                                f"(over {TOKEN_ANSWER_LIMIT >> 20} MiB): not read further")
            return resp.status, raw, resp.headers.get("X-Subject-Token"), resp.headers.get("Date")
    except (TimeoutError, aiohttp.ClientError) as exc:
        # The message is ours: aiohttp's own can quote request details.
        raise AuthError(f"cannot reach the identity service {url}: {_network_error(exc).message}",
                        transient=True) from None


def _parse_time(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class KeystoneAuth:
    """Tokens for one login (a password or an application credential), renewed as they age."""

    def __init__(self, session: aiohttp.ClientSession, login: Login, stop: Stopper,
                 token: Token | None = None) -> None:
        self.session = session
        self.login = login
        # The manifest's and the log's "auth": which way the token is asked for.
        self.name = ("application_credential" if isinstance(login, ApplicationCredentialLogin)
                     else "password")
        self._stop = stop
        self.token_requests = 0
        self._token = token
        self._renewal = SingleFlight(self._fetch)
        self._refused: str | None = None
        self._quiet_until = 0.0  # after a failed background renewal, wait before the next

    @property
    def token(self) -> Token | None:
        return self._token

    async def current(self) -> Token:
        """A token fit to send now; waits for a renewal only when the current one is stale."""
        if self._refused is not None:
            raise AuthError(self._refused)
        token = self._renewal.still_good(self._token, self._quiet_until, self._background_failed)
        return token if token is not None else await self._renewal.wait()

    async def headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        return {"X-Auth-Token": (await self.current()).value}

    async def refresh_after_401(self, sent_at: float) -> bool:
        if self._refused is not None:
            return False
        token = self._token
        if token is not None and token.received > sent_at:
            return True  # renewed since that request left: just retry
        if token is not None and not self._renewal.running:
            self._token = None  # the server no longer takes it (revoked): never send it again
        try:
            await self._renewal.wait()
        except AuthError as exc:
            return exc.transient
        return True

    async def close(self) -> None:
        await self._renewal.close()

    async def _fetch(self) -> Token:
        self.token_requests += 1
        try:
            token = await request_token(self.session, self.login)
        except AuthError as exc:
            if not exc.transient:
                self._refused = str(exc)
                self._stop.request(f"credentials refused: {self._refused}")
            raise
        self._token = token
        log.debug("token obtained", expires_at=token.expires_at.isoformat(),
                  lifetime_s=round(token.lifetime, 1))
        return token

    def _background_failed(self, exc: BaseException) -> None:
        token = self._token
        self._quiet_until = time.monotonic() + min(30.0, token.lifetime / 20 if token else 1.0)
        log.warning("token renewal failed; the current token stays in use", error=str(exc))
