"""A job's connection to the snapshot API, proven before any snapshot is changed: the HTTP
session, the credentials (a token from the identity service when needed), the endpoint (given,
or found in the service catalog), then one GET of the snapshot list under the job's rate limit.
Wrong credentials, endpoint, path family or project end here as one line (exit 2), with no PUT
sent and no lockout risked: a refused credential is never tried twice.

The connection also holds the job's router (worker/routing.py): the pair proven here is its
first route, and rows of other projects or regions open theirs through it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from .api.aksk import AkSkAuth
from .api.auth import Auth, AuthError, FileToken, NoAuth, StaticToken
from .api.catalog import CatalogError, find_endpoint
from .api.client import Answer, HttpSettings, SnapshotApi, make_session
from .api.errors import ErrorInfo
from .api.keystone import KeystoneAuth, answer_text, fetch_catalog
from .api.metadata import MetadataAuth, MetadataService
from .api.paths import collection_path
from .credentials import Credentials
from .errors import ConfigError
from .logs import log
from .rate import Limiter
from .retry import Ending, Retrier, RetryPolicy, Unlimited
from .routing import Pair, Route, Router, endpoint_for
from .stop import Stop

REFUSED_HINTS = {
    "aksk": " (check the access key, the secret key and this machine's clock)",
    "metadata": " (check the agency's permissions and this machine's clock)",
    "token": " (the token is wrong or expired)",
    "none": " (the endpoint wants credentials)",
    "application_credential": " (the application credential's project or roles do not allow it)",
}
STATUS_HINTS = {
    403: " (the credentials may not list this project's snapshots)",
    404: " (check --endpoint, --path-family and the project id)",
}


@dataclass
class Connection:
    # None only for a job whose rows name their regions and that has none of its own: each
    # row's pair is then located and proven through the router.
    api: SnapshotApi | None
    auth: Auth
    credentials: Credentials
    endpoint_origin: str  # "--endpoint", "--region cn-north-4", "service catalog: volumev3, ..."
    checked: str | None  # the URL of the proving GET; None when no project was known
    router: Router
    # The project rows without a project_id go to: --project-id, else the token's (a token scoped
    # by project name, or an application credential's); None when neither is known.
    project_id: str | None = None

    @property
    def endpoint(self) -> str:
        return self.api.endpoint if self.api is not None else "(each row's region)"

    @property
    def family(self) -> str:
        return self.api.family if self.api is not None else (self.credentials.path_family or "(each row's region)")

    async def prove(self, limiter: Limiter) -> None:
        """One GET of the job's own pair under `limiter`, which limits the router's proofs of
        the other pairs too: every request of a job counts against the quota."""
        self.router.limit_with(limiter)
        if self.api is None:
            return  # each row's pair is proven when met
        self.checked = await prove_api(self.api, self.credentials.method, self.project_id, self.router.retrier)
        if self.project_id is not None:
            self.router.adopt(Route(Pair(self.project_id, self.credentials.region), self.api, self.auth,
                                    self.endpoint_origin, self.checked))

    @property
    def default_api(self) -> SnapshotApi:
        """The job's own endpoint, for commands that have one (plan, consume, auth check)."""
        if self.api is None:
            raise ConfigError("no endpoint for the job: give --region (or OS_REGION_NAME)")
        return self.api


@asynccontextmanager
async def connect(creds: Credentials, http: HttpSettings, limiter: Limiter, policy: RetryPolicy,
                  stop: Stop, rows_name_regions: bool = False, prove: bool = True) -> AsyncIterator[Connection]:
    """Raises ConfigError for anything that makes the job impossible. `rows_name_regions`: the
    rows carry a region column, so a job without a region of its own need not have an endpoint
    of its own either. `prove` False: the caller proves the connection (`Connection.prove`) once
    it has the limit to prove it under (queue mode's shared limit is named by the endpoint)."""
    if not http.verify_tls:
        log.warning("TLS certificate verification is off (--insecure): the endpoint is not authenticated")
    session = make_session(http)
    auth: Auth | None = None
    router = Router(session, creds, policy, limiter, stop)
    try:
        auth, catalog, project_id = await _authenticate(session, creds, policy, stop)
        router.adopt_credentials(project_id, auth, catalog)
        try:
            endpoint, family, origin = locate_endpoint(creds, catalog)
        except ConfigError:
            if not (rows_name_regions and creds.region is None):
                raise
            log.info("no endpoint of the job's own (no --region): each row's region gives its endpoint")
            yield Connection(None, auth, creds, "each row's region", None, router, project_id)
            return
        conn = Connection(SnapshotApi(session, endpoint, family, auth), auth, creds, origin, None, router,
                          project_id)
        if prove:
            await conn.prove(limiter)
        yield conn
    finally:
        await router.close()
        if auth is not None:
            await auth.close()
        await session.close()


async def _authenticate(session: aiohttp.ClientSession, creds: Credentials, policy: RetryPolicy,
                        stop: Stop) -> tuple[Auth, list[dict[str, Any]] | None, str | None]:
    # The identity service is not the API: its calls are retried, but not under the API's rate.
    identity = Retrier(policy, Unlimited(), stop)
    if creds.method == "none":
        return NoAuth(), None, creds.project_id
    if creds.method == "aksk":
        assert creds.key is not None
        return AkSkAuth(creds.key, stop), None, creds.project_id
    if creds.method == "metadata":
        assert creds.metadata_url is not None
        keys = MetadataAuth(MetadataService(session, creds.metadata_url), creds.project_id, stop)
        await from_identity(identity, keys.current)
        return keys, None, creds.project_id
    if creds.method == "token":
        assert creds.token is not None
        catalog = None
        if creds.endpoint is None:
            assert creds.auth_url is not None
            token, auth_url = creds.token, creds.auth_url
            catalog = await from_identity(identity, lambda: fetch_catalog(session, auth_url, token))
        auth = FileToken(creds.token_file) if creds.token_file else StaticToken(creds.token)
        return auth, catalog, creds.project_id
    assert creds.login is not None
    keystone = KeystoneAuth(session, creds.login, stop)
    first = await from_identity(identity, keystone.current)
    return keystone, first.catalog, creds.project_id or first.project_id


async def from_identity(retrier: Retrier, call: Callable[[], Awaitable[Any]]) -> Any:
    """What the identity service gave; a refusal, or a failure past the attempts, is one line."""

    async def send() -> Answer:
        try:
            return Answer(200, payload=await call())
        except AuthError as exc:
            return Answer(None, error=ErrorInfo("auth_failed", str(exc)), transient=exc.transient)

    tried = await retrier.call(send, what="identity")
    if tried.ending is Ending.OK and tried.answer is not None:
        return tried.answer.payload
    error = tried.answer.error if tried.answer is not None else None
    raise ConfigError(error.message if error else "stopped while asking the identity service")


def locate_endpoint(creds: Credentials, catalog: list[dict[str, Any]] | None) -> tuple[str, str, str]:
    """The job's own endpoint (its region's): (base URL, path family, where it came from)."""
    if creds.endpoint_template is not None:
        endpoint = endpoint_for(creds.endpoint_template, creds.region)
        if endpoint is None:
            raise ConfigError(f"the endpoint {creds.endpoint_template} needs a region: give --region "
                              "(or OS_REGION_NAME), or a region column in the jobs file")
        return endpoint, creds.path_family or "v2", creds.endpoint_origin
    if creds.endpoint:
        return creds.endpoint, creds.path_family or "v2", creds.endpoint_origin
    try:
        found = find_endpoint(catalog or [], creds.region, creds.interface)
    except CatalogError as exc:
        raise ConfigError(str(exc)) from None
    origin = f"service catalog: {found.service_type}, {found.interface}, region {found.region}"
    return found.url, creds.path_family or found.family, origin


async def prove_api(api: SnapshotApi, method: str, project_id: str | None, retrier: Retrier) -> str | None:
    if project_id is None:
        log.info("no project known before the job (rows carry their own): the credentials are "
                 "checked by the first request")
        return None
    url = f"{api.endpoint}{collection_path(api.family, project_id)}/detail?limit=1"

    async def send() -> Answer:
        answer, _ = await api.list_page(project_id, limit=1)
        return answer

    tried = await retrier.call(send, what="credential check")
    answer = tried.answer
    if tried.ending is Ending.OK:
        return url
    if answer is None:
        raise ConfigError("stopped before the credential check")
    detail = answer_text(answer.status, answer.error)
    if answer.status == 401:
        raise ConfigError(f"the credentials ({method}) were refused by {api.endpoint}: "
                          f"{detail}{REFUSED_HINTS.get(method, '')}")
    raise ConfigError(f"the credential check GET {url} failed: {detail}"
                      f"{STATUS_HINTS.get(answer.status or 0, '')}")
