"""The one retry loop of every request to the API (a PUT, a listing page, the credential check,
a call to the identity service): take a rate-limit slot, send, tell the limiter the answer,
classify it, back off, and try again within the attempts and the deadline.

- Every attempt takes a fresh slot, so retries never push the job over its quota.
- ok: done. Permanent (4xx but 408/413/429, a refused credential): done, failed.
- 401: one renewal of the credentials, when the auth method can renew them, then a resend.
- Transient (429, 5xx, no answer): wait (Retry-After when the server sent one, else exponential
  backoff with full jitter; seconds after a 429), unless the wait would pass the deadline.
- A stop ends the wait at once, and no attempt starts once the job is stopping.
- Every resend is counted, and logged as one `retry` event (debug: the summary counts them).
"""

from __future__ import annotations

import enum
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from .api.client import Answer
from .logs import log
from .quota import Quota
from .rate import Limiter
from .stop import Stop
from .waits import set_within


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base: float = 0.5  # seconds; attempt n waits up to base * 2**(n-1)
    cap: float = 30.0  # no single wait is longer than this
    deadline: float = 300.0  # seconds from a job's first attempt to its last
    # A 429 without Retry-After: wait seconds, not milliseconds (docs/design.md#retries).
    throttled_min: float = 2.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int, status: int | None, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.deadline)
        wait = self.rng.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))
        if status == 429:
            wait = max(wait, self.rng.uniform(self.throttled_min, 2 * self.throttled_min))
        return wait


class Renewal(Protocol):
    """The part of an auth method the loop needs: whether a 401 is worth one resend."""

    async def refresh_after_401(self, sent_at: float) -> bool: ...


class Ending(enum.Enum):
    OK = "ok"
    FAILED = "failed"  # a permanent answer, or the last attempt failed
    GAVE_UP = "gave_up"  # the next wait would pass the deadline
    STOPPED = "stopped"  # the job is stopping: no further attempt


@dataclass
class Counters:
    requests: int = 0  # attempts sent, resends included
    retries: int = 0  # resends
    throttled: int = 0  # 429 answers
    backing_off: int = 0  # calls waiting out a backoff now (they send nothing: concurrency auto)
    first_sent: float | None = None  # clock of the first and the last attempt sent
    last_sent: float | None = None
    busiest_second: int = 0  # the most attempts sent within any one second
    _last_second: deque[float] = field(default_factory=deque, repr=False)

    def sent(self, at: float) -> None:
        """Count one attempt sent at `at` (seconds, monotonic)."""
        self.requests += 1
        if self.first_sent is None:
            self.first_sent = at
        self.last_sent = at
        window = self._last_second
        window.append(at)
        while window[0] <= at - 1.0:
            window.popleft()
        self.busiest_second = max(self.busiest_second, len(window))

    @property
    def achieved_rate(self) -> float:
        """Requests per second, as --rate counts them (no one-second window holds more): N sends
        span N-1 intervals, so over a run of a second or more it is (N-1) / (last - first); a run
        shorter than a second sent all its requests within one second. (requests / elapsed
        over-reports short runs: 30 at --rate 500 showed 530/s.)"""
        if self.first_sent is None or self.last_sent is None:
            return 0.0
        span = self.last_sent - self.first_sent
        return float(self.requests) if span < 1.0 else (self.requests - 1) / span


@dataclass(frozen=True)
class Tried:
    """How a call ended: its last answer (None when nothing was sent) and the attempts made."""

    ending: Ending
    answer: Answer | None
    attempts: int


class Unlimited:
    """For calls outside the API's quota (the identity service)."""

    async def acquire(self) -> None:
        return None

    def observe(self, status: int | None, retry_after: float | None,
                quota: Quota | None = None, server_second: int | None = None) -> None:
        return None

    def unused(self) -> None:
        return None


class Retrier:
    def __init__(self, policy: RetryPolicy, limiter: Limiter, stop: Stop,
                 auth: Renewal | None = None, counters: Counters | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.limiter = limiter
        self.stop = stop
        self.auth = auth
        self.counters = counters or Counters()
        self._clock = clock

    def for_auth(self, auth: Renewal | None) -> Retrier:
        """The same loop (policy, limiter, stop, counters) renewing another auth on a 401: one
        per (project, region) pair of a job, each with its own credentials (worker/routing.py)."""
        if auth is self.auth:
            return self
        return Retrier(self.policy, self.limiter, self.stop, auth, self.counters, self._clock)

    async def call(self, send: Callable[[], Awaitable[Answer]], **context: object) -> Tried:
        """`context` names the call in the retry event (what, line, snapshot_id...)."""
        policy, counters, stop = self.policy, self.counters, self.stop
        started = self._clock()
        attempts = 0
        renewed = False
        answer: Answer | None = None
        while True:
            await self.limiter.acquire()
            if stop.is_set:
                self.limiter.unused()
                return Tried(Ending.STOPPED, answer, attempts)
            attempts += 1
            counters.sent(self._clock())
            if attempts > 1:
                counters.retries += 1
            try:
                answer = await send()
            except BaseException:  # cancelled in flight (the stop's grace ran out), or a bug
                self.limiter.unused()
                raise
            error = answer.error
            self.limiter.observe(answer.status, answer.retry_after,
                                 error.quota if error is not None else None, answer.server_second)
            if answer.ok:
                return Tried(Ending.OK, answer, attempts)
            if answer.status == 429:
                counters.throttled += 1
            if answer.status == 401 and not renewed and self.auth is not None:
                renewed = True
                if await self.auth.refresh_after_401(answer.sent_at):
                    _log_retry(context, answer, attempts, 0.0)
                    continue
            if not answer.transient or attempts >= policy.max_attempts:
                return Tried(Ending.FAILED, answer, attempts)
            delay = policy.delay(attempts, answer.status, answer.retry_after)
            if self._clock() + delay - started > policy.deadline:
                return Tried(Ending.GAVE_UP, answer, attempts)
            _log_retry(context, answer, attempts, delay)
            counters.backing_off += 1
            try:
                await set_within(stop.requested, delay)
            finally:
                counters.backing_off -= 1


def _log_retry(context: dict[str, object], answer: Answer, attempt: int, delay: float) -> None:
    error = answer.error
    log.debug("retry", **context, attempt=attempt, http_status=answer.status,
              error_code=error.code if error else None, wait_s=round(delay, 3))
