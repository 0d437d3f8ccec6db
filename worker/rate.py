"""The request rate limit, shared by every sender of a job.

Two parts:
- pacing (`Pacer`): each request takes the next free slot on a schedule one interval apart,
  where the interval is a little over 1/rate, so no window on the server's clock holds more than
  `rate`; waiters woken late do not fire at once to catch up (at most BURST seconds of slack).
- a hard cap: asyncio-throttle's sliding window, at most `rate` grants in any one-second window
  of our own clock, whatever the pacing does. Paced requests never fill it, so its 10 ms polling
  loop does not run.
Waiters queue behind one sleeping dispatcher: nothing spins however many senders wait. Why, as
measured: docs/design.md#pacing.

`AdaptiveRateLimiter` (`--rate auto`) finds an unknown quota from the 429s it causes.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from asyncio_throttle import Throttler

# Slots are spaced (1 + margin) / rate apart: the server's clock may see our requests shifted by
# up to margin seconds per second of traffic and still count no more than `rate` in a second.
PACING_MARGIN = 0.015
# Grants may run this far ahead of the even spacing (several in one turn of a busy loop); kept
# under the margin, so that BURST plus jitter still fit in it.
BURST = 0.005
# The shortest sleep the dispatcher asks for: the timer resolution of uvloop (libuv).
TIMER_TICK = 0.001


class Limiter(Protocol):
    async def acquire(self) -> None:
        """Wait for a slot; each request, retries included, takes one."""

    def observe(self, status: int | None, retry_after: float | None) -> None:
        """Told the status of every answer (None: no answer), so a limiter can adapt."""


class Pacer:
    """Even spacing at `rate`, for any number of waiters, none of them polling.

    GCRA: a theoretical time of the next grant (TAT) advances one interval per grant, and a grant
    may come at most BURST before it. A request that finds its slot free goes at once; the others
    queue in order behind one dispatcher task, which sleeps until the first one's slot and lets
    through every waiter whose slot has come. So each grant costs a future, not a timer and a
    sleep of its own (docs/design.md#pacing), and waiters woken late together are let through one
    interval apart (at most BURST early) rather than in a burst. `reschedule` delays the next
    grant (the rate fell, or the server asked for a pause); the waiters keep their order.
    """

    def __init__(self, rate: float, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.interval = (1.0 + PACING_MARGIN) / rate
        self._clock = clock
        self._sleep = sleep
        self._tat = -math.inf  # the theoretical time of the next grant
        self._not_before = -math.inf  # no grant before this (a pause, or a cut's first slot)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._dispatcher: asyncio.Task[None] | None = None

    def now(self) -> float:
        return self._clock() if self._clock else asyncio.get_running_loop().time()

    def _due(self) -> float:
        return max(self._tat - BURST, self._not_before)

    def _grant(self, now: float) -> None:
        self._tat = max(self._tat, now) + self.interval

    async def wait(self) -> None:
        now = self.now()
        if not self._waiters and now >= self._due():
            self._grant(now)
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._dispatcher is None:
            self._dispatcher = asyncio.ensure_future(self._dispatch())
        await waiter

    async def _dispatch(self) -> None:
        waiters = self._waiters
        try:
            while waiters:
                now = self.now()
                due = self._due()
                if due > now:
                    # Timers of uvloop tick in milliseconds: never ask for less, or a sleep
                    # that rounds to zero would spin until the slot comes.
                    await self._sleep(max(due - now, TIMER_TICK))
                    continue
                waiter = waiters.popleft()
                if not waiter.done():  # its sender was not cancelled meanwhile
                    self._grant(now)
                    waiter.set_result(None)
        finally:
            self._dispatcher = None

    def speed_up(self, rate: float) -> None:
        """Grants from the next one on are closer; the next one stands."""
        self.interval = (1.0 + PACING_MARGIN) / rate

    def reschedule(self, rate: float, not_before: float = -math.inf) -> None:
        """Slower, or paused until `not_before`: the next grant is one new interval away at
        least, and not before `not_before`."""
        self.interval = (1.0 + PACING_MARGIN) / rate
        self._not_before = max(self.now() + self.interval, not_before)


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
    # The longest pause a Retry-After imposes on every sender. Quotas count per second or per
    # minute, so an honest wait is at most a minute; senders waiting for a slot check no
    # deadline, so a longer one (31 years, `inf`) would hang the job. The throttled request's own
    # retry still waits the whole value, up to its deadline.
    MAX_PAUSE = 60.0

    def __init__(self, start: float = START, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._rate = start
        # The running loop's clock by default (tests pass a fake one, and its sleep).
        self._pacer = Pacer(start, clock, sleep)
        self.ceiling: float | None = None  # the rate the server accepted when it last said 429
        self._step = 0.0
        self._hold_until = -math.inf
        self._paused_until = -math.inf
        self._round_end = math.inf  # set by the first answer
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
        if self._started is None:
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
        if retry_after is not None and retry_after > 0:  # nan is not
            self._paused_until = max(self._paused_until, now + min(retry_after, self.MAX_PAUSE))
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
