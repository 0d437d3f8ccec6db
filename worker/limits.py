"""The request rate limit, shared by every sender of a job.

Two parts:
- pacing: each request takes the next free slot on a schedule one interval apart, where the
  interval is a little over 1/rate. A burst of `rate` requests at once would arrive at the
  server spread by its own queueing, and a window on the server's clock could then hold more
  than `rate` (measured: 43 in one second at a limit of 40). Even spacing leaves room for jitter.
- a hard cap: asyncio-throttle's sliding window, at most `rate` grants in any one-second window
  of our own clock, whatever the pacing does. Paced requests never fill it, so its 10 ms polling
  loop does not run.
Waiters sleep until their slot: nothing spins however many senders wait.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

from asyncio_throttle import Throttler

# Slots are spaced (1 + margin) / rate apart: the server's clock may see our requests shifted by
# up to margin seconds per second of traffic and still count no more than `rate` in a second.
PACING_MARGIN = 0.01


class Limiter(Protocol):
    async def acquire(self) -> None:
        """Wait for a slot; each request, retries included, takes one."""

    def observe(self, status: int | None, retry_after: float | None) -> None:
        """Told the status of every answer (None: no answer), so a limiter can adapt."""


class RateLimiter:
    def __init__(self, rate: float | None) -> None:
        """`rate` requests per second; None or 0 means unlimited."""
        self.rate = rate or None
        self._next_slot = 0.0
        self._throttler: Throttler | None = None
        if self.rate:
            self._interval = (1.0 + PACING_MARGIN) / self.rate
            # Fractional rates above 1/s round down: a one-second window never holds more.
            self._throttler = Throttler(
                rate_limit=max(1, math.floor(self.rate)), period=max(1.0, 1.0 / self.rate)
            )

    async def acquire(self) -> None:
        if self._throttler is None:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)
        await self._throttler.acquire()

    def observe(self, status: int | None, retry_after: float | None) -> None:
        """A fixed limit does not adapt."""
