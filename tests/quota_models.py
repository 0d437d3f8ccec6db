"""Small quota models for fake-clock tests of the rate limiters: what a gateway does with each
request at a time, as (status, Retry-After, stated quota). The simulator's own limits serve the
tests over real sockets; these drive the limiter alone, in simulated time."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from worker.quota import Quota

Answer = tuple[int, float | None, Quota | None]


@dataclass
class PerSecond:
    """At most `limit` in any one-second window (a sliding window, as the simulator's)."""

    limit: int
    retry_after: float | None = None
    state: bool = False  # the 429 states the limit
    _times: deque[float] = field(default_factory=deque)

    def answer(self, now: float) -> Answer:
        times = self._times
        while times and times[0] <= now - 1.0:
            times.popleft()
        if len(times) < self.limit:
            times.append(now)
            return 200, None, None
        return 429, self.retry_after, Quota(self.limit, 1.0) if self.state else None


@dataclass
class FixedWindow:
    """`limit` per window of `window` seconds, windows starting at multiples of it (plus
    `offset`) on the server's clock: the shape of a gateway's per-minute quota."""

    limit: int
    window: float
    offset: float = 0.0
    retry_after: bool = False  # say when the window reopens
    state: bool = False
    _start: float = -math.inf
    _used: int = 0

    def answer(self, now: float) -> Answer:
        start = math.floor((now - self.offset) / self.window) * self.window + self.offset
        if start != self._start:
            self._start, self._used = start, 0
        if self._used < self.limit:
            self._used += 1
            return 200, None, None
        wait = start + self.window - now if self.retry_after else None
        return 429, wait, Quota(self.limit, self.window) if self.state else None


class FixedWholeSecondRetryAfter(FixedWindow):
    """Fixed windows whose 429 says `Retry-After: 1`, whole seconds, as HTTP writes it (and the
    simulator, and Kong's per-second limits): the pause says nothing of where the window ends."""

    def answer(self, now: float) -> Answer:
        status, _, stated = super().answer(now)
        return status, (1.0 if status == 429 else None), stated


@dataclass
class TokenBucket:
    """`rate` tokens a second, at most `burst` saved."""

    rate: float
    burst: float
    _tokens: float = 0.0
    _at: float | None = None

    def answer(self, now: float) -> Answer:
        if self._at is None:
            self._tokens, self._at = self.burst, now
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 200, None, None
        return 429, None, None
