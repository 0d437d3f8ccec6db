"""Apply one job: take a rate-limit slot, PUT, and retry transient failures.

Every attempt takes a fresh slot, so retries never push the job over its quota. A 401 gets one
immediate retry when the auth method could renew its credentials; anything else permanent ends
the job at once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from .api.client import Answer, SnapshotApi
from .jobs import Job
from .rate import Limiter
from .logs import log
from .results import Outcome, Result, from_answer, from_job
from .retry import RetryPolicy


@dataclass
class Counters:
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    backing_off: int = 0  # jobs waiting out a retry's backoff now (not sending: --concurrency auto)


class Relabeler:
    def __init__(self, api: SnapshotApi, limiter: Limiter, policy: RetryPolicy,
                 stopping: asyncio.Event | None = None) -> None:
        self.api = api
        self.limiter = limiter
        self.policy = policy
        # Once set, no new attempt starts: a job waiting for a slot or a backoff ends interrupted.
        self.stopping = stopping or asyncio.Event()
        self.counters = Counters()

    async def apply(self, job: Job) -> Result:
        started = time.monotonic()
        attempts = 0
        renewed_auth = False
        body = job.body()
        answer: Answer | None = None
        while True:
            await self.limiter.acquire()
            if self.stopping.is_set():
                return _interrupted(job, answer, attempts)
            attempts += 1
            self.counters.requests += 1
            answer = await self.api.update(job.project_id, job.snapshot_id, body)
            self.limiter.observe(answer.status, answer.retry_after)
            if answer.ok:
                return from_answer(job, answer, Outcome.APPLIED, attempts)
            if answer.status == 429:
                self.counters.throttled += 1
            if answer.status == 401 and not renewed_auth:
                renewed_auth = True
                if await self.api.auth.refresh_after_401(answer.sent_at):
                    continue
            if not answer.transient or attempts >= self.policy.max_attempts:
                return from_answer(job, answer, Outcome.FAILED, attempts)
            delay = self.policy.delay(attempts, answer.status, answer.retry_after)
            if time.monotonic() + delay - started > self.policy.deadline:
                result = from_answer(job, answer, Outcome.FAILED, attempts)
                result.error_message = f"{result.error_message} (gave up: per-job deadline)"
                return result
            self.counters.retries += 1
            _log_retry(job, answer, attempts, delay)
            self.counters.backing_off += 1
            try:
                await asyncio.wait_for(self.stopping.wait(), delay)
            except TimeoutError:
                pass
            finally:
                self.counters.backing_off -= 1


def _interrupted(job: Job, last: Answer | None, attempts: int) -> Result:
    if last is None:
        return from_job(job, Outcome.INTERRUPTED, attempts=attempts,
                        error_message="the job stopped before this row was sent")
    result = from_answer(job, last, Outcome.INTERRUPTED, attempts)
    result.error_message = f"the job stopped while retrying: {result.error_message}"
    return result


def _log_retry(job: Job, answer: Answer, attempt: int, delay: float) -> None:
    error = answer.error
    log.debug(
        "retry", line=job.line, snapshot_id=job.snapshot_id, attempt=attempt,
        http_status=answer.status, error_code=error.code if error else None,
        wait_s=round(delay, 3),
    )
