"""Apply one job: its PUT through the retry loop, and the row's result from how that ended."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .api.client import Answer, SnapshotApi
from .jobs import Job
from .results import Outcome, Result, from_answer, from_job
from .retry import Ending, Retrier
from .routing import Route, RouteError, Router


class Updates(Protocol):
    """The snapshot API as the sender sees it (the client, or the client wrapped in metrics)."""

    async def update(self, project_id: str, snapshot_id: str, body: dict[str, Any]) -> Answer: ...


class Relabeler:
    """`router`: each row goes to the route of its (project, region) pair, with that pair's
    credentials renewed on a 401; `wrap` is applied to each route's API (queue metrics)."""

    def __init__(self, api: Updates | None, retrier: Retrier, router: Router | None = None,
                 wrap: Callable[[SnapshotApi], Updates] | None = None) -> None:
        self.api = api
        self.retrier = retrier
        self.counters = retrier.counters
        self.router = router
        self._wrap = wrap
        self._senders: dict[int, tuple[Updates, Retrier]] = {}  # by id(route): routes live as long as the job

    async def apply(self, job: Job) -> Result:
        api, retrier = self.api, self.retrier
        if self.router is None:
            assert api is not None  # without a router, the one API
        else:
            try:
                route = await self.router.route(job.project_id, job.region)
            except RouteError as exc:
                stop = retrier.stop
                if stop.is_set:  # the route failed because the job is stopping
                    return from_job(job, stop.outcome, attempts=0, error_message=stop.message)
                return from_job(job, Outcome.FAILED, attempts=0, error_code=exc.code,
                                error_message=f"not sent: {exc}")
            api, retrier = self._sender(route)
        body, send = job.body(), api
        tried = await retrier.call(
            lambda: send.update(job.project_id, job.snapshot_id, body),
            what="update", line=job.line, snapshot_id=job.snapshot_id)
        answer = tried.answer
        if answer is None:
            return from_job(job, Outcome.INTERRUPTED, attempts=0,
                            error_message="the job stopped before this row was sent")
        if tried.ending is Ending.OK:
            return from_answer(job, answer, Outcome.APPLIED, tried.attempts)
        if tried.ending is Ending.STOPPED:
            result = from_answer(job, answer, Outcome.INTERRUPTED, tried.attempts)
            result.error_message = f"the job stopped while retrying: {result.error_message}"
            return result
        result = from_answer(job, answer, Outcome.FAILED, tried.attempts)
        if tried.ending is Ending.GAVE_UP:
            result.error_message = f"{result.error_message} (gave up: per-job deadline)"
        return result

    def _sender(self, route: Route) -> tuple[Updates, Retrier]:
        sender = self._senders.get(id(route))
        if sender is None:
            api: Updates = route.api if self._wrap is None else self._wrap(route.api)
            sender = self._senders[id(route)] = (api, self.retrier.for_auth(route.auth))
        return sender
