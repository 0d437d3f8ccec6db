"""Apply one job: its PUT through the retry loop, and the row's result from how that ended."""

from __future__ import annotations

from typing import Any, Protocol

from .api.client import Answer
from .jobs import Job
from .results import Outcome, Result, from_answer, from_job
from .retry import Ending, Retrier


class Updates(Protocol):
    """The snapshot API as the sender sees it (the client, or the client wrapped in metrics)."""

    async def update(self, project_id: str, snapshot_id: str, body: dict[str, Any]) -> Answer: ...


class Relabeler:
    def __init__(self, api: Updates, retrier: Retrier) -> None:
        self.api = api
        self.retrier = retrier
        self.counters = retrier.counters

    async def apply(self, job: Job) -> Result:
        body = job.body()
        tried = await self.retrier.call(
            lambda: self.api.update(job.project_id, job.snapshot_id, body),
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
