"""One job across several projects and regions: each row goes to the endpoint of its region with
credentials for its project. A (project, region) pair is opened once, whoever asks first, and
every other sender of that pair waits for the same opening (single-flight):

- credentials for the project: a project-scoped token of its own (password; renewed and, after a
  401, renewed for that project only), the access key signing with the row's X-Project-Id
  (AK/SK), or the user's token, which acts for one project only;
- the endpoint of the region: the catalog of that project's token, else --endpoint (with
  `{region}` in it, one per region; without, it serves one region), else
  https://evs.{region}.myhuaweicloud.com;
- proof: one GET of the pair's snapshot list under the job's rate limit (one limit for the whole
  job: quotas are per user), before any PUT of the pair.

A pair that cannot be opened is remembered with its reason and never tried again: each of its
rows fails with that reason, and the other pairs go on. A refused login stops the whole job
unless another project's login of the same user was accepted (then it is the project that is
refused, not the password): identity services lock accounts after a few refused logins.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any

import aiohttp

from .api.aksk import AkSkAuth
from .api.auth import Auth, NoAuth
from .api.catalog import CatalogError, find_endpoint
from .api.client import SnapshotApi
from .api.keystone import KeystoneAuth, PasswordLogin
from .credentials import Credentials, huawei_endpoint
from .errors import ConfigError, SnaprelabelError
from .logs import log
from .rate import Limiter
from .retry import Retrier, RetryPolicy, Unlimited
from .stop import Stop

REGION_PLACEHOLDER = "{region}"


@dataclass(frozen=True, order=True)
class Pair:
    project_id: str
    region: str | None  # None: the job has no region (an --endpoint without one)

    def __str__(self) -> str:
        return f"project {self.project_id}" + (f" region {self.region}" if self.region else "")

    @property
    def key(self) -> str:
        """How the manifest and the summary name the pair."""
        return f"{self.project_id}@{self.region}" if self.region else self.project_id


@dataclass
class Route:
    """A proven pair: where its rows go, and as whom."""

    pair: Pair
    api: SnapshotApi
    auth: Auth
    origin: str  # where the endpoint came from
    checked: str | None  # the URL of the proving GET


class RouteError(SnaprelabelError):
    """A pair that cannot be used: `code` goes to the report of each of its rows. `setup` marks a
    job that asks for what its settings cannot do (several projects under one token, several
    regions under one endpoint): a jobs file read before the start is then refused whole."""

    def __init__(self, code: str, message: str, setup: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.setup = setup


def endpoint_for(template: str, region: str | None) -> str | None:
    """An --endpoint holding {region}, for one region; None when it needs one and there is none."""
    if REGION_PLACEHOLDER not in template:
        return template
    return template.replace(REGION_PLACEHOLDER, region) if region else None


class Router:
    """The routes of a job, opened on first use (or all at once by `prove`, before the first
    PUT). Built by worker/connection.py, with the route it proved at the start."""

    def __init__(self, session: aiohttp.ClientSession, creds: Credentials, policy: RetryPolicy,
                 limiter: Limiter, stop: Stop) -> None:
        self._session = session
        self.creds = creds
        self._stop = stop
        self._identity = Retrier(policy, Unlimited(), stop)
        self.retrier = Retrier(policy, limiter, stop)
        self._routes: dict[Pair, asyncio.Task[Route]] = {}
        self._ready: dict[tuple[str, str | None], Route] = {}  # (row's project, row's region): opened
        self._credentials: dict[str, asyncio.Task[tuple[Auth, list[dict[str, Any]] | None]]] = {}
        self._accepted: set[str] = set()  # projects whose login was accepted
        self._auths: list[Auth] = []
        self._default: tuple[Auth, list[dict[str, Any]] | None] | None = None
        # A user's token acts for its project alone: the job's, or the first project met.
        self._token_project = creds.project_id
        # A plain --endpoint serves the job's region, or the first region met.
        self._endpoint_region = creds.region

    def limit_with(self, limiter: Limiter) -> None:
        """The job's rate limit for the proofs of pairs from now on (queue mode's shared one is
        built once the connection has an endpoint)."""
        self.retrier = Retrier(self.retrier.policy, limiter, self._stop)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set

    @property
    def stop_reason(self) -> str | None:
        return self._stop.reason

    def pair(self, project_id: str, region: str | None) -> Pair:
        return Pair(project_id, region or self.creds.region)

    @property
    def pairs(self) -> list[Pair]:
        return sorted(self._routes)

    def adopt_credentials(self, project: str | None, auth: Auth, catalog: list[dict[str, Any]] | None) -> None:
        """The credentials connection.connect got before the job (`project`: theirs, when known):
        they serve their project in every region."""
        self._default = (auth, catalog)
        if project is not None:
            self._credentials[project] = _done((auth, catalog))
            self._accepted.add(project)
            if self._token_project is None:
                self._token_project = project

    def adopt(self, route: Route) -> None:
        """The route connection.connect proved before the job."""
        self._routes[route.pair] = _done(route)
        if self._endpoint_region is None:
            self._endpoint_region = route.pair.region

    async def route(self, project_id: str, region: str | None) -> Route:
        """Raises RouteError, the same for every row of the pair."""
        ready = self._ready.get((project_id, region))
        if ready is not None:  # every row but a pair's first few: one lookup, no await
            return ready
        pair = self.pair(project_id, region)
        task = self._routes.get(pair)
        if task is not None and task.done():
            route = task.result()  # raises the pair's RouteError
            self._ready[project_id, region] = route
            return route
        if task is None:
            task = self._routes[pair] = asyncio.create_task(self._open(pair), name=f"route-{pair.key}")
            task.add_done_callback(_retrieve)
        return await asyncio.shield(task)  # a cancelled sender must not cancel the opening

    async def prove(self, pairs: list[Pair]) -> dict[Pair, Route | RouteError]:
        """Open every pair (concurrently: the API calls share the job's rate limit)."""
        answers = await asyncio.gather(*(self._try(p) for p in pairs))
        return dict(zip(pairs, answers, strict=True))

    async def _try(self, pair: Pair) -> Route | RouteError:
        try:
            return await self.route(pair.project_id, pair.region)
        except RouteError as exc:
            return exc

    async def close(self) -> None:
        for task in (*self._routes.values(), *self._credentials.values()):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        for auth in self._auths:
            await auth.close()

    # -- opening a pair ----------------------------------------------------------------------------

    async def _open(self, pair: Pair) -> Route:
        from .connection import prove_api  # connection builds routers: no cycle at import time

        task = self._credentials.get(pair.project_id)
        if task is None:
            task = self._credentials[pair.project_id] = asyncio.create_task(self._login(pair.project_id))
            task.add_done_callback(_retrieve)
        auth, catalog = await asyncio.shield(task)
        endpoint, family, origin = self._endpoint(pair, catalog)
        api = SnapshotApi(self._session, endpoint, family, auth)
        try:
            checked = await prove_api(api, self.creds.method, pair.project_id, self.retrier.for_auth(auth))
        except ConfigError as exc:
            raise RouteError("pair_refused", f"{pair}: {exc}") from None
        log.info("pair proven", project_id=pair.project_id, region=pair.region, endpoint=endpoint,
                 endpoint_from=origin)
        return Route(pair, api, auth, origin, checked)

    async def _login(self, project: str) -> tuple[Auth, list[dict[str, Any]] | None]:
        from .connection import from_identity

        creds = self.creds
        if creds.method == "none":
            return NoAuth(), None
        if creds.method == "aksk":
            assert creds.key is not None
            return self._keep(AkSkAuth(dataclasses.replace(creds.key, project_id=project), self._stop)), None
        if creds.method != "password" or not isinstance(creds.login, PasswordLogin):
            # A token (and any method not rescoped here) acts for one project.
            if self._default is not None and self._token_project in (None, project):
                self._token_project = project  # the first project met: the token's, presumably
                return self._default
            what = "a token acts" if creds.method == "token" else f"{creds.method} credentials act"
            raise RouteError("token_scope", (
                f"project {project}: {what} for one project ({self._token_project}); for "
                "several projects use a password or an access key (AK/SK)"), setup=True)
        login = dataclasses.replace(creds.login, project_id=project, project_name=None)
        keystone = KeystoneAuth(self._session, login, _ProjectStop(self, project))
        self._keep(keystone)
        try:
            token = await from_identity(self._identity, keystone.current)
        except ConfigError as exc:
            raise RouteError("pair_refused", str(exc)) from None  # it names the project
        self._accepted.add(project)
        return keystone, token.catalog

    def _keep(self, auth: Auth) -> Auth:
        self._auths.append(auth)
        return auth

    def _endpoint(self, pair: Pair, catalog: list[dict[str, Any]] | None) -> tuple[str, str, str]:
        creds = self.creds
        family = creds.path_family or "v2"
        if creds.endpoint_template is not None:
            return self._given_endpoint(pair, creds.endpoint_template, family)
        if catalog is not None or creds.endpoint is None:
            try:
                found = find_endpoint(catalog or [], pair.region, creds.interface)
            except CatalogError as exc:
                raise RouteError("no_endpoint", f"{pair}: {exc}") from None
            return (found.url, creds.path_family or found.family,
                    f"service catalog: {found.service_type}, {found.interface}, region {found.region}")
        if pair.region is None:
            return creds.endpoint, family, creds.endpoint_origin
        return huawei_endpoint("evs", pair.region), family, f"region {pair.region} of the row"

    def _given_endpoint(self, pair: Pair, template: str, family: str) -> tuple[str, str, str]:
        origin = self.creds.endpoint_origin
        if REGION_PLACEHOLDER in template:
            url = endpoint_for(template, pair.region)
            if url is None:
                raise RouteError("no_region", f"{pair}: the endpoint {template} needs a region: "
                                              "give a region column or --region", setup=True)
            return url, family, f"{origin}, region {pair.region}"
        if pair.region is not None and self._endpoint_region is None:
            self._endpoint_region = pair.region
        if pair.region not in (None, self._endpoint_region):
            raise RouteError("region_unserved", (
                f"{pair}: --endpoint {template} serves one region ({self._endpoint_region}): put "
                "{region} in it, or leave it out so that each region's endpoint comes from the "
                "service catalog (or https://evs.REGION.myhuaweicloud.com)"), setup=True)
        return template, family, origin


class _ProjectStop:
    """What a project's KeystoneAuth calls when its login is refused for good: the whole job stops
    when the password itself may be wrong (no login accepted yet) or was changed (this project's
    was accepted before); else only this project is refused, and its rows fail."""

    def __init__(self, router: Router, project: str) -> None:
        self._router = router
        self._project = project

    def request(self, reason: str) -> None:
        router = self._router
        if self._project in router._accepted or not router._accepted:
            router._stop.request(reason)
        else:
            log.error("project refused", project_id=self._project, error=reason)


def _done(value: Any) -> asyncio.Task[Any]:
    async def give() -> Any:
        return value

    return asyncio.get_running_loop().create_task(give())


def _retrieve(task: asyncio.Task[Any]) -> None:
    """A failed opening is awaited by its rows; when none is left, its error is not 'never retrieved'."""
    if not task.cancelled():
        task.exception()
