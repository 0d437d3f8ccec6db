"""The request rate limit, shared by every sender of a job.

Two parts:
- pacing (`Pacer`): each request takes the next free slot on a schedule one interval apart,
  where the interval is a little over 1/rate. A burst of `rate` requests at once would arrive at
  the server spread by its own queueing, and a window on the server's clock could then hold more
  than `rate` (measured: 43 in one second at a limit of 40). Even spacing leaves room for jitter.
  Waiters woken late (a busy loop) do not all fire at once to catch up: grants themselves are
  spaced too, with at most BURST seconds of slack (at 2,000/s, catching up had put 2,099
  requests into one second on the server's clock).
- a hard cap: asyncio-throttle's sliding window, at most `rate` grants in any one-second window
  of our own clock, whatever the pacing does. Paced requests never fill it, so its 10 ms polling
  loop does not run.
Waiters sleep until their slot: nothing spins however many senders wait (bench/RESULTS.md:
asyncio-throttle alone burns 0.9 of a core at 2,000/s with 2,000 waiters, this 0.08).

`AdaptiveRateLimiter` (`--rate auto`) finds an unknown quota from the 429s it causes.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from typing import Awaitable, Callable, Protocol

from asyncio_throttle import Throttler

# Slots are spaced (1 + margin) / rate apart: the server's clock may see our requests shifted by
# up to margin seconds per second of traffic and still count no more than `rate` in a second.
PACING_MARGIN = 0.015
# Grants may run this far ahead of the even spacing (several in one turn of a busy loop); kept
# under the margin, so that BURST plus jitter still fit in it.
BURST = 0.005


class Limiter(Protocol):
    async def acquire(self) -> None:
        """Wait for a slot; each request, retries included, takes one."""

    def observe(self, status: int | None, retry_after: float | None) -> None:
        """Told the status of every answer (None: no answer), so a limiter can adapt."""


class Pacer:
    """Even spacing at `rate`, for any number of waiters, none of them polling.

    Each waiter books the next slot and sleeps once until it. On waking it is also checked
    against the grants actually made (GCRA: a theoretical time of the next grant that advances
    one interval per grant; a grant may come at most BURST before it), so waiters woken late
    together are let through one interval apart rather than in a burst. `reschedule` makes booked slots void
    (the rate fell, or the server asked for a pause): their waiters book again.
    """

    def __init__(self, rate: float, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.interval = (1.0 + PACING_MARGIN) / rate
        self._clock = clock
        self._sleep = sleep
        self._next_slot = -math.inf
        self._granted = -math.inf  # the theoretical time of the next grant
        self._epoch = 0

    def now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    async def wait(self) -> None:
        while True:
            now = self.now()
            slot = max(now, self._next_slot)
            self._next_slot = slot + self.interval
            epoch = self._epoch
            if slot > now:
                await self._sleep(slot - now)
                now = self.now()
            if epoch != self._epoch:
                continue  # the schedule changed while this waiter slept
            # Woken late along with others: take the next grant time, one interval after the
            # last (each its own, so no herd wakes up together), rather than all go at once.
            grant = max(now, self._granted - BURST)
            self._granted = max(self._granted, grant) + self.interval
            if grant > now:
                await self._sleep(grant - now)
                if epoch != self._epoch:
                    continue
            return

    def speed_up(self, rate: float) -> None:
        """Slots booked from now on are closer; those already booked stand."""
        self.interval = (1.0 + PACING_MARGIN) / rate

    def reschedule(self, rate: float, not_before: float = -math.inf) -> None:
        """Slower, or paused until `not_before`: every waiter books again."""
        self.interval = (1.0 + PACING_MARGIN) / rate
        self._next_slot = max(self.now() + self.interval, not_before)
        self._granted = max(self._granted, not_before + BURST)
        self._epoch += 1


class RateLimiter:
    def __init__(self, rate: float | None) -> None:
        """`rate` requests per second; None or 0 means unlimited."""
        self.rate = rate or None
        self._pacer: Pacer | None = None
        self._throttler: Throttler | None = None
        if self.rate:
            self._pacer = Pacer(self.rate)
            # Fractional rates above 1/s round down: a one-second window never holds more.
            self._throttler = Throttler(
                rate_limit=max(1, math.floor(self.rate)), period=max(1.0, 1.0 / self.rate)
            )

    async def acquire(self) -> None:
        if self._pacer is None or self._throttler is None:
            return
        await self._pacer.wait()
        await self._throttler.acquire()

    def observe(self, status: int | None, retry_after: float | None) -> None:
        """A fixed limit does not adapt."""


class AdaptiveRateLimiter:
    """`--rate auto`: find the server's hidden quota and hold just under it.

    Requests are paced evenly at the current rate by a Pacer. The rate moves in rounds
    of one second (the server's usual window), in the manner of TCP congestion control:

    - slow start: until the first 429 the rate doubles each round, from START.
    - multiplicative decrease: a 429 sets the ceiling (the quota's estimate) and cuts the rate
      to BACKOFF times it. The ceiling is the rate when the server still accepted nearly all of
      it (a probe just past the quota), else what it accepted over the last second: measuring
      that, rather than halving what was sent, lands near a quota that dropped tenfold in one
      step. 429s for requests sent before the decrease (within HOLD) change nothing more.
    - additive increase: each round without a 429 adds a step: at most STEP (2%) of the
      ceiling, and at most PER_SUCCESS (1/2000) of it per request accepted in the round. A probe
      past the quota costs one or two 429s, so each cycle is long enough (at least ~200
      requests) to keep them near 1%; at a low quota the climb is slower, in seconds.
    - once past the old ceiling without a 429, the quota has risen: the step doubles each round,
      so a raised quota is found in a few seconds, not minutes.
    - the rate only grows while it is what holds the job back (at least USED of the round's
      slots were taken): a job slowed by latency or by its last rows does not inflate it.
    - Retry-After: nothing is granted before it passes, for any sender.

    Over a cycle the rate runs between BACKOFF and 1 times the quota: about 95% on average.
    """

    START = 10.0  # requests per second before anything is known
    FLOOR = 0.2  # never slower than one request in five seconds
    MAX = 10_000.0
    BACKOFF = 0.9
    STEP = 0.02
    PER_SUCCESS = 1 / 2000
    HOLD = 1.0  # seconds after a decrease during which 429s are from requests sent before it
    ROUND = 1.0
    USED = 0.8
    NEAR = 0.85  # a 429 with at least this share of the rate accepted is a probe's, not a drop's

    def __init__(self, start: float = START, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._rate = start
        # The running loop's clock by default (tests pass a fake one, and its sleep).
        self._pacer = Pacer(start, clock, sleep)
        self.ceiling: float | None = None  # the rate the server accepted when it last said 429
        self._step = 0.0
        self._hold_until = -math.inf
        self._paused_until = -math.inf
        self._round_end: float | None = None
        self._granted = 0  # grants in this round
        self._accepted = 0  # answers that were not 429 in this round
        self._recent: deque[float] = deque()  # times of accepted answers in the last second
        self._started: float | None = None  # first answer

    @property
    def rate(self) -> float:
        return self._rate

    async def acquire(self) -> None:
        await self._pacer.wait()
        self._granted += 1

    def observe(self, status: int | None, retry_after: float | None) -> None:
        now = self._pacer.now()
        if self._round_end is None:
            self._started = now
            self._start_round(now)
        if status == 429:
            self._throttled(now, retry_after)
        elif status is not None:
            self._accepted += 1
            recent = self._recent
            recent.append(now)
            if recent[0] <= now - 2.0:  # keep it short without a pass on every answer
                while recent[0] <= now - 1.0:
                    recent.popleft()
        if now >= self._round_end:
            self._end_round(now)

    def _throttled(self, now: float, retry_after: float | None) -> None:
        if retry_after:
            self._paused_until = max(self._paused_until, now + retry_after)
            self._pacer.reschedule(self._rate, self._paused_until)
        if now < self._hold_until:
            return
        # What the server took over the last second (early in the job: since the first answer).
        recent = self._recent
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        span = min(1.0, now - self._started) if self._started is not None else 1.0
        accepted = len(recent) / max(span, 0.1)
        # Near the rate, this is a probe just past the quota: cut from the rate, which a count
        # over one second (off by one either way: a tenth at 10/s) would only blur. Far below
        # it, the quota fell: cut from what was accepted.
        reference = self._rate if accepted >= self.NEAR * self._rate else accepted
        self.ceiling = max(self.FLOOR, reference)
        self._rate = max(self.FLOOR, self.BACKOFF * reference)
        self._step = 0.0
        self._hold_until = now + self.HOLD
        self._pacer.reschedule(self._rate, self._paused_until)
        self._start_round(now)

    def _end_round(self, now: float) -> None:
        used = self._granted >= self.USED * self._rate * (now - self._round_end + self.ROUND)
        if used and now >= self._hold_until:
            if self.ceiling is None:
                self._rate = min(self.MAX, self._rate * 2)
            else:
                base = min(self.STEP * self.ceiling, self.PER_SUCCESS * self.ceiling * self._accepted)
                if self._rate > self.ceiling:
                    self._step = max(2 * self._step, base)  # past the old quota: probe faster
                else:
                    self._step = base
                self._rate = min(self.MAX, self._rate + self._step)
            self._pacer.speed_up(self._rate)
        self._start_round(now)

    def _start_round(self, now: float) -> None:
        self._round_end = now + self.ROUND
        self._granted = self._accepted = 0


def make_limiter(rate: float | str | None) -> RateLimiter | AdaptiveRateLimiter:
    """The limiter for a job's `rate` setting: a number (0: none) or "auto"."""
    if rate == "auto":
        return AdaptiveRateLimiter()
    return RateLimiter(float(rate) if rate else None)
