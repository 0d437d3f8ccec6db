"""Who may call the simulator: a Keystone-compatible token service and the check every API request
passes.

- `POST /v3/auth/tokens`: password identity (user name + domain, or user id) scoped to a project
  (id, or name + domain), or an application credential (id, or name + user: scoped to its
  user's project); the token comes in X-Subject-Token and expires after `token_lifetime`; the
  body carries the user's roles and the service catalog, pointing at the simulator itself.
  Times are by the server's clock (`clock_offset` ahead of this machine's, in the Date header
  too); `truncate_issued_at` cuts issued_at to the second as Keystone does (expires_at =
  issued_at + lifetime, so the token lives up to 1 s less than asked).
- `GET /v3/auth/catalog`: the catalog, for a token the caller already has.
- An API request passes with a static token (config.tokens), an issued token that has not
  expired (a PUT only when its roles include member or admin, else 403 as Cinder's policy
  answers), or an AK/SK signature recomputed here: a wrong one is 401 (APIGW.0301), one dated
  more than 15 minutes off the server's clock is 401 (APIGW.0303), and five failures in a row
  lock the access key for five minutes, as Huawei's gateway does.
- A project-scoped token acts for its project alone, and a signed request for its X-Project-Id
  alone: a request for another project's URL is 403, as Cinder's policy and the gateway answer.
  A user may be scoped to its own project and to `User.projects`.

- The instance metadata service of a Huawei Cloud ECS with an agency, when `metadata_key_lifetime`
  is set: `GET /openstack/latest/securitykey` hands out a new temporary AK/SK with its security
  token at every call, valid for that many seconds (by the server's clock, `clock_offset`
  included, which its Date header carries too); requests signed with one that has expired get
  the gateway's 401. `PUT /meta-data/latest/api/token` gives a session token, which the GET
  accepts but does not require. `metadata_status` (tests) makes the service answer that
  status instead, as a broken one would.

Token requests are logged in `token_requests`, metadata calls in `metadata_requests`, neither in
the API's request log.
"""

from __future__ import annotations

import calendar
import email.utils
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..api.aksk import ALGORITHM, DATE_FORMAT, canonical_request, query_pairs, signature
from .responses import UNAUTHORIZED, cinder_error, encode, json_response

if TYPE_CHECKING:
    from .config import SimulatorConfig

MAX_CLOCK_SKEW = 15 * 60.0
LOCKOUT_FAILURES = 5
LOCKOUT_SECONDS = 300.0


@dataclass(frozen=True)
class User:
    name: str
    password: str = field(repr=False)
    domain: str = "Default"
    domain_id: str = "default"
    project_id: str | None = None  # None: the simulator's project
    project_name: str = "sim-project"
    id: str = ""  # empty: derived from the name
    roles: tuple[str, ...] = ("member", "reader")  # as Keystone lists them: implied ones too
    projects: tuple[str, ...] = ()  # more project ids the user may scope a token to

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", hashlib.md5(self.name.encode()).hexdigest())

    @classmethod
    def parse(cls, spec: str) -> User:
        return cls(*_pair(spec, "a user must look like NAME:PASSWORD"))


@dataclass(frozen=True)
class AppCredential:
    """A Keystone application credential: its token is scoped to its user's project."""

    id: str
    secret: str = field(repr=False)
    name: str = ""  # empty: the id
    user: User | None = None  # None: a user of its own ("app-ID") in the simulator's project
    roles: tuple[str, ...] | None = None  # None: its user's

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.id)
        if self.user is None:
            object.__setattr__(self, "user", User(f"app-{self.id}", secrets.token_hex(16)))

    @property
    def owner(self) -> User:
        assert self.user is not None
        return self.user

    @classmethod
    def parse(cls, spec: str) -> AppCredential:
        return cls(*_pair(spec, "an application credential must look like ID:SECRET"))


@dataclass(frozen=True)
class AccessKeyPair:
    access_key: str
    secret_key: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)  # temporary credentials

    @classmethod
    def parse(cls, spec: str) -> AccessKeyPair:
        return cls(*_pair(spec, "an access key must look like AK:SK"))


def _pair(spec: str, shape: str) -> tuple[str, str]:
    """'NAME:SECRET'; the error names only what comes before the colon."""
    name, sep, secret = spec.partition(":")
    if not sep or not name or not secret:
        raise ValueError(f"{shape}, got {name!r}...")
    return name, secret


@dataclass(frozen=True)
class CatalogEntry:
    type: str
    interface: str
    region: str
    url: str  # "{self}": the simulator's base URL; "{project_id}": the token's project


_ELSEWHERE = "http://volume.{region}.sim.invalid"  # never resolves (RFC 2606)
DEFAULT_CATALOG: tuple[CatalogEntry, ...] = (
    CatalogEntry("identity", "public", "sim-1", "{self}/v3"),
    CatalogEntry("volumev3", "public", "sim-1", "{self}/v3/{project_id}"),
    CatalogEntry("volumev3", "internal", "sim-1", _ELSEWHERE.format(region="internal") + "/v3/{project_id}"),
    CatalogEntry("volumev3", "public", "sim-2", _ELSEWHERE.format(region="sim-2") + "/v3/{project_id}"),
    CatalogEntry("volumev2", "public", "sim-1", "{self}/v2/{project_id}"),
    CatalogEntry("volumev2", "public", "sim-2", _ELSEWHERE.format(region="sim-2") + "/v2/{project_id}"),
    CatalogEntry("evs", "public", "sim-1", "{self}/v2/{project_id}"),
)


@dataclass(slots=True)
class TokenRequest:
    t_mono: float
    user: str | None
    status: int
    token: str | None = field(default=None, repr=False)  # the token issued, for tests
    method: str = "password"
    project: str | None = None  # the project asked for (its id, when the scope gave one)


def _keystone_error(status: int, title: str, message: str) -> web.Response:
    return json_response(status, encode({"error": {"code": status, "title": title, "message": message}}))


def _gateway_401(code: str, message: str) -> tuple[int, bytes]:
    return 401, encode({"error_code": code, "error_msg": message, "request_id": uuid.uuid4().hex})


_UNAUTHORIZED = (401, UNAUTHORIZED)
# Cinder's answer to a PUT by a token without member or admin (volume:update_snapshot).
_FORBIDDEN = (403, encode({"forbidden": {
    "code": 403, "message": "Policy doesn't allow volume:update_snapshot to be performed."}}))
UPDATE_ROLES = frozenset({"admin", "member"})


@dataclass(frozen=True, slots=True)
class Issued:
    expiry: float  # time.monotonic()
    project_id: str | None
    roles: tuple[str, ...]


def _object(value: object) -> dict[str, Any]:
    """A JSON object as it is, anything else as an empty one."""
    return value if isinstance(value, dict) else {}


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Identity:
    def __init__(self, config: SimulatorConfig) -> None:
        self.static_tokens: frozenset[str] = config.tokens
        self.users: tuple[User, ...] = tuple(config.users)
        self.keys = {k.access_key: k for k in config.access_keys}
        self.app_credentials: tuple[AppCredential, ...] = tuple(config.app_credentials)
        self.truncate_issued_at: bool = config.truncate_issued_at
        self.send_issued_at: bool = config.send_issued_at
        self.token_lifetime: float = config.token_lifetime
        self.catalog: tuple[CatalogEntry, ...] = tuple(config.catalog)
        self.project_id: str = config.project_id
        self.clock_offset: float = config.clock_offset  # seconds the server's clock is ahead
        self.metadata_key_lifetime: float | None = config.metadata_key_lifetime
        self.metadata_status: int | None = None  # set by tests: the metadata service is broken
        self.metadata_requests: list[TokenRequest] = []  # user: the access key handed out
        self.key_expiry: dict[str, float] = {}  # temporary access key -> monotonic expiry
        self.required = bool(self.static_tokens or self.users or self.keys or self.app_credentials
                             or self.metadata_key_lifetime)
        self.issued: dict[str, Issued] = {}
        self.token_requests: list[TokenRequest] = []
        self.signature_failures: Counter[str] = Counter()
        self.locked_until: dict[str, float] = {}

    # -- the check on every API request ----------------------------------------------------------

    def refuse(self, request: web.BaseRequest, body: bytes | None,
               project_id: str | None = None) -> tuple[int, bytes] | None:
        """None when the request may pass, else the 401 (or 403: another project) answer."""
        authorization = request.headers.get("Authorization")
        if authorization is not None and authorization.startswith(ALGORITHM) and self.keys:
            refused = self._check_signature(request, body or b"", authorization)
            scope = request.headers.get("X-Project-Id")
            if refused is None and scope and project_id is not None and scope != project_id:
                return 403, encode({"error_code": "APIGW.0305", "error_msg": (
                    f"the request's X-Project-Id {scope} is not the project of its URL")})
            return refused
        token = request.headers.get("X-Auth-Token")
        if token is None:
            return _UNAUTHORIZED
        if token in self.static_tokens:
            return None
        issued = self.issued.get(token)
        if issued is not None and issued.expiry > time.monotonic():
            if issued.project_id is not None and project_id is not None and issued.project_id != project_id:
                return 403, cinder_error(403, "forbidden", "Policy doesn't allow "
                                         "volume:get_all_snapshots to be performed.")
            if request.method == "PUT" and not UPDATE_ROLES & set(issued.roles):
                return _FORBIDDEN
            return None
        return _UNAUTHORIZED

    def revoke_all(self) -> None:
        """Every issued token stops working at once (static tokens stay)."""
        self.issued.clear()

    def _check_signature(self, request: web.BaseRequest, body: bytes, authorization: str
                         ) -> tuple[int, bytes] | None:
        fields = dict(part.strip().partition("=")[::2]
                      for part in authorization[len(ALGORITHM):].split(","))
        access = fields.get("Access", "")
        key = self.keys.get(access)
        if key is None:
            return _gateway_401("APIGW.0301", "Incorrect IAM authentication information: "
                                "the access key does not exist")
        now = time.monotonic()
        if self.key_expiry.get(access, now + 1) <= now:
            return _gateway_401("APIGW.0301", "Incorrect IAM authentication information: the "
                                "security token has expired")
        if self.locked_until.get(access, 0.0) > now:
            return _gateway_401("APIGW.0301", "Incorrect IAM authentication information: the "
                                "access key is locked after repeated signature failures")
        date = request.headers.get("X-Sdk-Date", "")
        try:
            signed_at = calendar.timegm(time.strptime(date, DATE_FORMAT))
        except ValueError:
            return self._failed(access, "X-Sdk-Date is missing or malformed")
        if abs(time.time() + self.clock_offset - signed_at) > MAX_CLOCK_SKEW:
            return _gateway_401("APIGW.0303", "Incorrect app authentication information: the "
                                "request time is more than 15 minutes off the server's clock")
        signed = [name for name in fields.get("SignedHeaders", "").split(";") if name]
        if not {"host", "x-sdk-date"} <= set(signed) or any(n not in request.headers for n in signed):
            return self._failed(access, "a signed header is missing")
        if key.security_token is not None and (
                request.headers.get("X-Security-Token") != key.security_token
                or "x-security-token" not in signed):
            return self._failed(access, "the security token is missing or wrong")
        url = request.rel_url
        canonical = canonical_request(request.method, url.raw_path, query_pairs(url.raw_query_string),
                                      {n: request.headers[n] for n in signed}, signed, body)
        if not hmac.compare_digest(signature(key.secret_key, date, canonical), fields.get("Signature", "")):
            return self._failed(access, "verify aksk signature fail")
        self.signature_failures[access] = 0
        return None

    def _failed(self, access: str, reason: str) -> tuple[int, bytes]:
        self.signature_failures[access] += 1
        if self.signature_failures[access] >= LOCKOUT_FAILURES:
            self.locked_until[access] = time.monotonic() + LOCKOUT_SECONDS
            self.signature_failures[access] = 0
        return _gateway_401("APIGW.0301", f"Incorrect IAM authentication information: {reason}")

    # -- the instance metadata service -----------------------------------------------------------

    def serves_metadata(self, path: str) -> bool:
        return self.metadata_key_lifetime is not None and path.startswith(("/openstack/", "/meta-data/"))

    def metadata(self, request: web.BaseRequest) -> web.Response:
        server_now = time.time() + self.clock_offset
        date = {"Date": formatdate(server_now, usegmt=True)}
        if self.metadata_status is not None:
            self.metadata_requests.append(TokenRequest(time.monotonic(), None, self.metadata_status, method="metadata"))
            return json_response(self.metadata_status, encode({"error": "metadata service unavailable"}), date)
        if request.path == "/meta-data/latest/api/token" and request.method == "PUT":
            return web.Response(status=200, text=secrets.token_urlsafe(32), headers=date)
        if request.path != "/openstack/latest/securitykey" or request.method != "GET":
            return json_response(404, encode({"error": "not found"}), date)
        assert self.metadata_key_lifetime is not None
        lifetime = self.metadata_key_lifetime
        access = "TMP" + secrets.token_hex(8).upper()
        key = AccessKeyPair(access, secrets.token_urlsafe(30), "sts-" + secrets.token_urlsafe(48))
        now = time.monotonic()
        for old in [k for k, expiry in self.key_expiry.items() if expiry < now - 600]:
            del self.key_expiry[old], self.keys[old]  # long expired: forgotten
        self.keys[access] = key
        self.key_expiry[access] = now + lifetime
        self.metadata_requests.append(TokenRequest(now, access, 200, key.security_token, "metadata"))
        expires = datetime.fromtimestamp(server_now + lifetime, UTC)
        body = {"credential": {"access": access, "secret": key.secret_key,
                               "securitytoken": key.security_token, "expires_at": _iso(expires)}}
        return json_response(200, encode(body), date)

    # -- the token service -----------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.Response:
        if request.path == "/v3/auth/tokens" and request.method == "POST":
            return await self._issue(request)
        if request.path == "/v3/auth/catalog" and request.method == "GET":
            return self._catalog_for(request)
        return _keystone_error(404, "Not Found", "The resource could not be found.")

    async def _issue(self, request: web.BaseRequest) -> web.Response:
        try:
            auth = json.loads(await request.read())["auth"]
            methods = auth["identity"]["methods"]
            given = auth["identity"]["password"]["user"] if "password" in methods else None
            credential = (auth["identity"]["application_credential"]
                          if "application_credential" in methods else None)
            scope = (auth.get("scope") or {}).get("project")
        except (ValueError, KeyError, TypeError):
            self.token_requests.append(TokenRequest(time.monotonic(), None, 400))
            return _keystone_error(400, "Bad Request", "Expecting to find auth in request body.")
        if credential is not None:
            return self._issue_for_credential(request, credential, scope)
        asked = scope.get("id") if isinstance(scope, dict) else None
        user = self._find_user(given) if isinstance(given, dict) else None
        password = given.get("password") if isinstance(given, dict) else None
        if user is None or not isinstance(password, str) or not hmac.compare_digest(
                password.encode(), user.password.encode()):
            self.token_requests.append(TokenRequest(time.monotonic(), user.name if user else None, 401))
            return _keystone_error(401, "Unauthorized", "The request you have made requires authentication.")
        project_id = user.project_id or self.project_id
        if isinstance(scope, dict) and scope.get("id") in user.projects:
            project_id = scope["id"]
        if scope is not None and not self._in_scope(user, project_id, scope):
            self.token_requests.append(TokenRequest(time.monotonic(), user.name, 401, project=asked))
            return _keystone_error(401, "Unauthorized", f"User {user.id} has no access to the project.")
        return self._token_answer(request, user, project_id if scope is not None else None,
                                  user.roles, "password")

    def _issue_for_credential(self, request: web.BaseRequest, given: Any, scope: Any) -> web.Response:
        found = self._find_credential(given) if isinstance(given, dict) else None
        secret = given.get("secret") if isinstance(given, dict) else None
        if found is None or not isinstance(secret, str) or not hmac.compare_digest(
                secret.encode(), found.secret.encode()):
            self.token_requests.append(TokenRequest(time.monotonic(), found.owner.name if found else None,
                                                    401, method="application_credential"))
            return _keystone_error(401, "Unauthorized", "The request you have made requires authentication.")
        if scope is not None:  # Keystone: an application credential carries its own scope
            self.token_requests.append(TokenRequest(time.monotonic(), found.owner.name, 401,
                                                    method="application_credential"))
            return _keystone_error(401, "Unauthorized",
                                   "Application credentials cannot request a scope.")
        user = found.owner
        roles = found.roles if found.roles is not None else user.roles
        return self._token_answer(request, user, user.project_id or self.project_id, roles,
                                  "application_credential")

    def _token_answer(self, request: web.BaseRequest, user: User, project_id: str | None,
                      roles: tuple[str, ...], method: str) -> web.Response:
        token = "gAAAAA" + secrets.token_urlsafe(96)
        now = time.time() + self.clock_offset  # the server's clock
        issued_at = datetime.fromtimestamp(now, UTC)
        if self.truncate_issued_at:
            issued_at = issued_at.replace(microsecond=0)
        life = (issued_at - datetime.fromtimestamp(now, UTC)).total_seconds() + self.token_lifetime
        self._prune()
        self.issued[token] = Issued(time.monotonic() + life, project_id, roles)
        self.token_requests.append(TokenRequest(time.monotonic(), user.name, 201, token, method, project_id))
        body: dict[str, Any] = {
            "methods": [method],
            "user": {"id": user.id, "name": user.name,
                     "domain": {"id": user.domain_id, "name": user.domain}},
            "expires_at": _iso(issued_at + timedelta(seconds=self.token_lifetime)),
        }
        if self.send_issued_at:
            body["issued_at"] = _iso(issued_at)
        if project_id is not None:
            body["project"] = {"id": project_id, "name": user.project_name,
                               "domain": {"id": user.domain_id, "name": user.domain}}
            body["roles"] = [{"id": hashlib.md5(r.encode()).hexdigest(), "name": r} for r in roles]
            body["catalog"] = self._catalog(request, project_id)
        return json_response(201, encode({"token": body}), {
            "X-Subject-Token": token, "Date": email.utils.formatdate(now, usegmt=True)})

    def _catalog_for(self, request: web.BaseRequest) -> web.Response:
        token = request.headers.get("X-Auth-Token", "")
        issued = self.issued.get(token)
        if token in self.static_tokens:
            project_id: str | None = self.project_id
        elif issued is not None and issued.expiry > time.monotonic():
            project_id = issued.project_id
        else:
            return _keystone_error(401, "Unauthorized", "The request you have made requires authentication.")
        return json_response(200, encode({"catalog": self._catalog(request, project_id) if project_id else []}))

    def _find_user(self, given: dict[str, Any], users: tuple[User, ...] | None = None) -> User | None:
        domain = _object(given.get("domain"))
        for user in self.users if users is None else users:
            if given.get("id"):
                if given["id"] == user.id:
                    return user
            elif given.get("name") == user.name and (
                    domain.get("id") == user.domain_id or domain.get("name") == user.domain):
                return user
        return None

    def _find_credential(self, given: dict[str, Any]) -> AppCredential | None:
        for credential in self.app_credentials:
            if given.get("id"):
                if given["id"] == credential.id:
                    return credential
            elif (given.get("name") == credential.name and isinstance(given.get("user"), dict)
                  and self._find_user(given["user"], (credential.owner,)) is credential.owner):
                return credential
        return None

    @staticmethod
    def _in_scope(user: User, project_id: str, scope: Any) -> bool:
        if not isinstance(scope, dict):
            return False
        if scope.get("id"):
            return bool(scope["id"] == project_id)
        domain = _object(scope.get("domain"))
        return bool(scope.get("name") == user.project_name and (
            domain.get("id") == user.domain_id or domain.get("name") == user.domain))

    def _catalog(self, request: web.BaseRequest, project_id: str) -> list[dict[str, Any]]:
        me = f"{request.scheme}://{request.host}"
        services: dict[str, list[dict[str, str]]] = {}
        for entry in self.catalog:
            services.setdefault(entry.type, []).append({
                "id": uuid.uuid5(uuid.NAMESPACE_URL, f"{entry.type}/{entry.interface}/{entry.region}").hex,
                "interface": entry.interface, "region": entry.region, "region_id": entry.region,
                "url": entry.url.replace("{self}", me).replace("{project_id}", project_id),
            })
        return [{"type": kind, "name": kind, "id": uuid.uuid5(uuid.NAMESPACE_URL, kind).hex,
                 "endpoints": endpoints} for kind, endpoints in services.items()]

    def _prune(self) -> None:
        now = time.monotonic()
        for token in [t for t, issued in self.issued.items() if issued.expiry <= now]:
            del self.issued[token]
