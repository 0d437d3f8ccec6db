"""The request rate limit, shared by every sender of a job.

Two parts:
- pacing (`Pacer`): each request takes the next free slot on a schedule one interval apart,
  where the interval is a little over 1/rate, so no window on the server's clock holds more than
  `rate`; waiters woken late do not fire at once to catch up (at most SPREAD seconds of slack).
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

from .fixed_seconds import FixedSeconds
from .in_flight import InFlightGate
from .logs import log
from .quota import Quota, as_written

# Slots are spaced (1 + margin) / rate apart: the server's clock may see our requests shifted by
# up to margin seconds per second of traffic and still count no more than `rate` in a second.
PACING_MARGIN = 0.015
# A grant may come up to BURST before its slot or GROUP after it without the schedule starting
# over (a late wake-up catches up within it). Any second then holds at most
# (1 + SPREAD + jitter) / interval + 1 grants, so SPREAD plus the jitter between our clock and the
# server's must stay under the margin: 8 ms of jitter fit (docs/design.md#pacing).
BURST = 0.002
GROUP = 0.005
SPREAD = BURST + GROUP
# Two waiters whose slots are at most this far apart share one wake-up (from 185/s: at 200/s, half
# the wake-ups); the first goes up to PAIR - BURST late (a tick more with the timer's rounding),
# within GROUP. Only two: larger groups left too little of GROUP for a late loop at 2,000/s.
PAIR = 0.0055
# The shortest sleep the dispatcher asks for: the timer resolution of uvloop (libuv).
TIMER_TICK = 0.001


class Limiter(Protocol):
    async def acquire(self) -> None:
        """Wait for a slot; each request, retries included, takes one."""

    def observe(self, status: int | None, retry_after: float | None,
                quota: Quota | None = None, server_second: int | None = None) -> None:
        """Told the status of every answer (None: no answer), its Retry-After, the quota a 429
        stated and the second of the server's clock it came in (its Date), so a limiter can adapt."""

    def unused(self) -> None:
        """A grant that sent nothing (the job stopped, or its sender was cancelled): no answer
        will come for it."""


class Schedule(Protocol):
    """What `AdaptiveRateLimiter` paces with: a local `Pacer`, or the shared one of queue mode."""

    def now(self) -> float: ...

    async def wait(self) -> None: ...

    def speed_up(self, rate: float) -> None: ...

    def reschedule(self, rate: float, not_before: float = -math.inf) -> None: ...


class Pacer:
    """Even spacing at `rate`, for any number of waiters, none of them polling.

    GCRA: a theoretical time of the next grant (TAT) advances one interval per grant, and a grant
    may come at most BURST before it, or GROUP after it without the schedule starting over. A
    request that finds its slot free goes at once; the others queue in order behind one
    dispatcher task, which sleeps until the first one's slot (the second's, if within PAIR) and
    lets through every waiter whose slot has come. So each grant costs a future, not a timer and
    a sleep of its own, and two waiters whose slots are that close share one wake-up of the
    loop, one write and often one answer's read (docs/design.md#pacing). Waiters woken late
    together are let through within SPREAD of their slots rather than in a burst. `reschedule`
    delays the next grant (the rate fell, or the server asked for a pause); the waiters keep
    their order.
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

    def _grant(self, now: float, late: float = 0.0) -> None:
        # Late by at most `late`, it keeps its slot; later, the schedule starts over from there.
        self._tat = max(self._tat, now - late) + self.interval

    def _sleep_for(self, due: float, now: float) -> float:
        """Until the next waiter's due time, or the second's if their slots are within PAIR: then
        in whole ticks, as uvloop rounds a timer to the nearest millisecond, and one that fired
        early would let the first through alone and wake again for the second. Never less than
        a tick: a sleep rounded to nothing would spin until the slot comes."""
        if len(self._waiters) > 1 and self.interval <= PAIR:
            second = self._tat + self.interval - BURST
            if second > due:
                return max(math.ceil((second - now) / TIMER_TICK - 1e-6), 1) * TIMER_TICK
        return max(due - now, TIMER_TICK)

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
                    await self._sleep(self._sleep_for(due, now))
                    continue
                waiter = waiters.popleft()
                if not waiter.done():  # its sender was not cancelled meanwhile
                    self._grant(now, GROUP)
                    waiter.set_result(None)
        finally:
            if self._dispatcher is asyncio.current_task():  # not one replaced by `reschedule`
                self._dispatcher = None

    def speed_up(self, rate: float) -> None:
        """Grants from the next one on are closer; the next one stands."""
        self.interval = (1.0 + PACING_MARGIN) / rate

    def reschedule(self, rate: float, not_before: float = -math.inf) -> None:
        """A new rate from now, or a pause until `not_before`: the next grant is one new
        interval away, and not before `not_before` (nor later: a slot booked at a slower pace,
        a closed window's trickle, is moved up)."""
        self.interval = (1.0 + PACING_MARGIN) / rate
        self._not_before = max(self.now() + self.interval, not_before)
        self._tat = min(self._tat, self._not_before)
        if self._dispatcher is not None:
            # It sleeps until the slot it saw, which may now come sooner (a closed window's
            # trickle, a second apart, reopened): a new one sleeps until the new slot.
            self._dispatcher.cancel()
            self._dispatcher = asyncio.ensure_future(self._dispatch())


class RateLimiter:
    def __init__(self, rate: float | None) -> None:
        """`rate` requests per second; None or 0 means unlimited."""
        self.rate = rate or None
        self.given = rate  # as the user wrote it (a Rate: 600/min)
        self.slowed_to: Quota | None = None  # a lower quota the API stated
        self._pacer: Pacer | None = None
        self._throttler: Throttler | None = None
        if self.rate:
            self._pacer = Pacer(self.rate)
            self._throttler = _hard_cap(self.rate)

    async def acquire(self) -> None:
        if self._pacer is None or self._throttler is None:
            return
        await self._pacer.wait()
        await self._throttler.acquire()

    def observe(self, status: int | None, retry_after: float | None,
                quota: Quota | None = None, server_second: int | None = None) -> None:
        """A fixed limit is a ceiling, not a demand: a lower quota stated by the API wins (one
        warning); nothing else changes it."""
        if quota is None or self._pacer is None or self.rate is None:
            return
        if quota.per_second < self.rate * (1 - 1e-9):
            if self.slowed_to is None:
                log.warning("the API states a lower quota than --rate: slowing to it",
                            rate=as_written(self.given), stated_quota=str(quota),
                            stated_per_s=round(quota.per_second, 3))
            self.slowed_to = quota
            self.rate = quota.per_second
            self._pacer.reschedule(self.rate)
            self._throttler = _hard_cap(self.rate)

    def unused(self) -> None:
        return None  # a slot on a fixed schedule passes whether used or not


def _hard_cap(rate: float) -> Throttler:
    # Fractional rates above 1/s round down: a one-second window never holds more.
    return Throttler(rate_limit=max(1, math.floor(rate)), period=max(1.0, 1.0 / rate))


class AdaptiveRateLimiter:
    """`--rate auto`: find the server's quota, its size and its shape, and hold just under it.

    Requests are paced evenly at the current rate by a Pacer. Why each rule, and what it
    measured: docs/design.md#adaptive-rate.

    - slow start: until the first 429 the rate doubles each round (SLOW_ROUND, or LATENCY_ROUNDS
      answers' latency up to SLOW_ROUND_MAX), by QUEUEING_GROWTH only once answers slow down.
      Its first 429 counts the quota: what the server took in the last second (since the start,
      if shorter; or in the refused second of the server's clock alone, by the answers' Date).
      If it came after fewer than START requests and a request at once is taken, that was
      perhaps no full window (a stray 429): slow start goes on, once. Requests in flight
      are bounded meanwhile by what the rate needs at unqueued answers' latency: when answers
      queue (a busy core), the rest wait for answers, not on the wire where a full quota refuses them.
    - a full window: the first 429, one stating a limit, or CLOSED_RUN in a row to requests
      sent after a cut (answers to requests sent before it are stale, and told apart by count),
      closes: a request when a second's window must have reopened (a second after the first
      request it counted, then sqrt(rate / TRY_COST) tries up to a second after the refusal),
      then a trickle, until one is accepted.
    - per second (it reopened within MIN_CLOSED): the ceiling is what the server took in the
      second before the last refusal; held at HOLD_AT of it. A lone 429 cuts to BACKOFF of what
      was accepted (once per HOLD). Additive increase (STEP of the ceiling a round) up to the
      hold, which lasts the probe gap, then a probe past it. Each probe that finds the same
      ceiling doubles the gap, up to what a probe costs: a few 429s (CHEAP_GAP, or PROBE_REQUESTS'
      time), or a Retry-After pause (PAUSE_BUDGET of the time). A round past the old ceiling
      and another (one may straddle two fixed windows; one is enough where 429s state the
      limit) without a 429, the quota rose: the step doubling, in quick rounds unless a 429 costs a
      Retry-After pause.
    - Retry-After: nothing is granted before it passes (at most MAX_PAUSE). A 429 within a
      second after such a pause counts the quota: what the server took in that second (under
      half the ceiling, only once a second such count says the same). Other
      ceilings it leaves unconfirmed are held at UNSURE_HOLD, as a probe would pause every
      sender; one refused at its hold was too high (a fixed window's ramp count): the count
      fixed seconds give, from that 429 and the ramp's (worker/fixed_seconds.py), or else
      BACKOFF of the pace refused, until the next probe.
    - per window (N per 20 s, per minute: still closed after MIN_CLOSED, or a Retry-After of at
      least WINDOW_PAUSE): not a fallen quota. Then the pace is N/W, evenly: N what the server
      took in the window that just ended, W the time between two openings; once W is known,
      nothing until just before the predicted opening. Each window is sent WINDOW_PROBE faster
      (N is used up either way): if it closes early N is counted again; if not, the quota grew,
      and the next window, sent at twice, counts it.
    - a limit the 429 states (`limit:600,time:1 minute`) is taken at once: the ceiling (held at
      it, as a fixed --rate would be), and for a window longer than a second, the window.
    """

    START = 10.0  # requests per second before anything is known
    FLOOR = 0.2  # never slower than one request in five seconds
    MAX = 10_000.0
    BACKOFF = 0.9
    HOLD_AT = 0.98  # the share of a confirmed ceiling held between probes
    UNSURE_HOLD = 0.94  # ... of one a costly probe (Retry-After) will not confirm soon
    CONFIRM = 0.05  # a ceiling found again within this share of the last one is confirmed
    STEP = 0.02
    PER_SUCCESS = 1 / 2000
    HOLD = 1.0  # seconds after a cut during which a lone 429 (a stray, a burst's end) cuts no more
    ROUND = 1.0
    SLOW_ROUND = 0.05  # slow start doubles this often (or each few answers' latency, if longer)
    LATENCY_ROUNDS = 4  # a slow-start round lasts at least this many times an answer's latency
    SLOW_ROUND_MAX = 0.25  # ... and at most this (the first answers wait for connections)
    QUEUEING = 3.0  # answers this much slower than the quickest: slow start grows by
    QUEUEING_GROWTH = 1.25  # ... this much a round instead of doubling
    RAMP_IN_FLIGHT = 8  # requests in flight slow start always allows (more: _ramp_in_flight)
    USED = 0.8
    DATED_SHARE = 0.8  # the ramp's count in the refused second of the server, if this much of the last second's
    NEAR = 0.85  # a 429 with at least this share of the rate accepted is a probe's, not a drop's
    PROBE_REQUESTS = 150  # requests between probes, once confirmed: each costs a few 429s ...
    FIRST_PROBE_REQUESTS = 75  # ... from this many, doubling with each confirmation
    CHEAP_GAP = 3.0  # the longest gap between probes that cost only a 429 or two (seconds),
    # or PROBE_REQUESTS' time if longer: a raised quota is found within 3 s from 100/s up
    PAUSE_BUDGET = 0.03  # the share of the time probes may lose to Retry-After pauses
    MAX_GAP = 60.0
    QUICK_PAST = 1.03  # this far past the ceiling without a 429, the quota has grown: short rounds
    MIN_CLOSED = 1.5  # a shorter run of 429s is a per-second quota's, whatever it looked like
    CLOSED_RUN = 2  # this many 429s in a row to requests sent after a cut: the server's window is full
    WINDOW_PAUSE = 2.0  # a Retry-After this long says a window closed, too
    TRICKLE = (0.25, 2.0)  # seconds between requests while a window is closed: first, at most
    TRY_GAP = 0.05  # at least this between a closed second's tries (the answer comes back first)
    FIXED_TRY_WAIT = 0.5  # at most this between tries of a fixed second (at 20/s and under)
    TRY_COST = 5.0  # a 429 weighs as much as this many requests' time lost (targets: 2% refused, 10% under)
    SPAN_SHARE = 0.2  # a closed window's trickle: this share of the time since it opened apart, at least
    LONGEST_TRY_GAP = 60.0  # a closed window of unknown length is tried at least this often
    WINDOW_PROBE = 0.1  # a probe window is sent this much faster; doubled while the quota grows
    # The longest pause a Retry-After imposes on every sender. Quotas count per second or per
    # minute, so an honest wait is at most a minute; senders waiting for a slot check no
    # deadline, so a longer one (31 years, `inf`) would hang the job. The throttled request's own
    # retry still waits the whole value, up to its deadline.
    MAX_PAUSE = 60.0

    def __init__(self, start: float = START, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 schedule: Schedule | None = None) -> None:
        self._rate = start
        # The running loop's clock by default (tests pass a fake one, and its sleep); queue mode
        # passes the schedule all replicas share (worker/queue/shared_auto.py).
        self._pacer: Schedule = schedule or Pacer(start, clock, sleep)
        self.ceiling: float | None = None  # the rate the server accepted when it last said 429
        self.stated: Quota | None = None  # the quota the last 429 stated
        self.confirmed = False  # the ceiling was found twice (or stated)
        self._hold_share = self.HOLD_AT  # of the ceiling, held between probes
        self.probe_gap = 0.0  # seconds held under a confirmed ceiling before the next probe
        self._pause_cost = 0.0  # seconds the last Retry-After paused every sender
        self._resumed = (-math.inf, 0.0)  # the end of the pause before it, and its length
        self._doubted: int | None = None  # a count after a pause too low to take at once
        self._step = 0.0
        self._held_since: float | None = None  # the rate reached HOLD_AT of the ceiling
        self._hold_until = -math.inf
        self._paused_until = -math.inf
        self._round_end = math.inf  # set by the first answer
        self._granted = 0  # grants in this round
        self._accepted = 0  # answers that were not 429 in this round
        self._seconds = FixedSeconds()  # times of accepted and refused answers, a few seconds back
        self._ramp_seconds: dict[int, int] = {}  # slow start's accepted answers by the server's second
        self._refused_second: int | None = None  # the server's second of the last 429
        self._ramp_counting = False  # answers still due to the ramp's requests add to its count
        self._started: float | None = None  # first answer
        self._refused_run = 0  # 429s in a row to requests sent after the last cut
        self._doubt_ramp = True  # the job's first reopening may say the ramp's 429 was a stray
        self._last_refused = -math.inf
        self._outstanding = 0  # requests granted and not yet answered
        self._gate = InFlightGate(self._ramp_in_flight)
        self._stale = 0  # answers still due to requests sent before the last cut
        self._sent_at: deque[float] = deque()  # grant times, to estimate an answer's latency
        self.latency = 0.0  # a moving estimate of an answer's latency (seconds)
        self.base_latency = math.inf  # the quickest answer seen: the latency without queueing
        self._stepped_at = -math.inf  # the last additive step
        # Per window: None until a closed window is seen.
        self.window: float | None = None  # the window's length, once known
        self.pace: float | None = None  # N/W: what the server takes, evenly
        self.closed_since: float | None = None  # the window is closed (a run of 429s)
        self._opened_at: float | None = None  # the last time a closed window reopened
        self._opening_sure = True  # ... and the server took a window's worth after it
        self._since_open = 0  # answers accepted since then
        self._probe_step = 0.0  # > 0 while a window is probed
        self._window_end = math.inf  # the end of the current window (once its length is known)
        self._in_window = 0  # answers accepted in the current window
        self._window_times: deque[float] = deque()  # times of answers accepted, a window back
        self._first_span = False  # the window's length is only the first span yet
        self._spacing = 0.0  # between the trickle's requests
        self._open_error = 0.0  # how far off the last opening's time may be
        self._window_error = math.inf  # ... and the window's length

    @property
    def rate(self) -> float:
        """The rate the job runs at (while a window is closed: the one it resumes at)."""
        return self._rate

    def learned(self) -> dict[str, float | None]:
        """What a successor needs to go on at this pace rather than start again (queue mode: the
        replica that takes over the shared learning)."""
        return {"rate": self._rate, "ceiling": self.ceiling, "confirmed": float(self.confirmed),
                "probe_gap": self.probe_gap, "pace": self.pace}

    @classmethod
    def going_on(cls, learned: dict[str, float | None], schedule: Schedule) -> AdaptiveRateLimiter:
        """A limiter that goes on from `learned()`. A window's length is learnt again (from the
        next closing): the openings it was timed from are the predecessor's."""
        def bounded(value: float | None) -> float | None:
            return None if value is None else min(cls.MAX, max(cls.FLOOR, value))

        limiter = cls(start=bounded(learned.get("rate")) or cls.START, schedule=schedule)
        limiter.ceiling = bounded(learned.get("ceiling"))
        limiter.confirmed = bool(learned.get("confirmed"))
        limiter._hold_share = cls.HOLD_AT if limiter.confirmed else cls.BACKOFF
        limiter.probe_gap = min(cls.MAX_GAP, max(0.0, learned.get("probe_gap") or 0.0))
        limiter.pace = bounded(learned.get("pace"))
        limiter._seconds = FixedSeconds(from_start=False)
        return limiter

    async def acquire(self) -> None:
        await self._gate.enter()
        try:
            await self._pacer.wait()
        except BaseException:
            self._gate.leave()
            raise
        self.granted()

    def granted(self) -> None:
        """A request was let through (by `acquire`, or by a shared schedule)."""
        self._granted += 1
        self._outstanding += 1
        if self.ceiling is None:  # slow start: its rounds follow the latency
            self._sent_at.append(self._pacer.now())

    def observe(self, status: int | None, retry_after: float | None,
                quota: Quota | None = None, server_second: int | None = None) -> None:
        now = self._pacer.now()
        if self._started is None:
            self._started = now
            self._opened_at = now
            self._start_round(now)
        self._outstanding = max(0, self._outstanding - 1)
        # Answers come back roughly in the order sent: those due to requests sent before the last
        # cut say nothing new about the pace set since.
        stale = self._stale > 0
        if stale:
            self._stale -= 1
        if self._sent_at:
            sample = now - self._sent_at.popleft()
            self.latency = 0.7 * self.latency + 0.3 * sample if self.latency else sample
            self.base_latency = min(self.base_latency, sample)
        if status == 429:
            self._seconds.refused(now)
            self._refused_second = server_second
            self._throttled(now, retry_after, quota, stale)
        elif status is not None:
            self._seconds.accepted(now)
            if stale and self._ramp_counting:
                self._late_ramp_answer(server_second)
            if self.ceiling is None and server_second is not None:
                counts = self._ramp_seconds
                counts[server_second] = counts.get(server_second, 0) + 1
                if len(counts) > 3:  # the ramp's count needs the last second's
                    del counts[min(counts)]
            self._accepted += 1
            self._since_open += 1
            self._in_window += 1
            if self.window is not None:
                times = self._window_times
                times.append(now)
                if times[0] < now - 2 * self.window:  # trimmed now and then, not every time
                    while times[0] < now - 1.2 * self.window:
                        times.popleft()
            if self.closed_since is not None and not stale:
                self._reopened(now)
            if not stale:
                self._refused_run = 0
        if now >= self._window_end:
            self._window_passed(now)
        if now >= self._round_end:
            self._end_round(now)
        self._gate.leave()  # after the answer's lessons: the first 429 lifts the ramp's bound

    def unused(self) -> None:
        """Its place in flight goes to the next request, and no answer is waited for it."""
        self._outstanding = max(0, self._outstanding - 1)
        if self.ceiling is None and self._sent_at:
            self._sent_at.pop()  # slow start's latency samples pair grants and answers in order
        self._gate.leave()

    # -- 429s ---------------------------------------------------------------------------------

    def _throttled(self, now: float, retry_after: float | None, quota: Quota | None,
                   stale: bool) -> None:
        # (A stale 429's Retry-After is its own request's: the pause its first one set stands.)
        if retry_after is not None and retry_after > 0 and not stale:  # nan is not
            pause = min(retry_after, self.MAX_PAUSE)
            if now >= self._paused_until:
                self._resumed = (self._paused_until, self._pause_cost)  # the last pause, over
            self._pause_cost = pause
            self._paused_until = max(self._paused_until, now + pause)
            self._pacer.reschedule(self._rate, self._paused_until)
            if pause >= self.WINDOW_PAUSE and self.closed_since is None and not stale:
                self._close(now)
        if quota is not None:
            # After the pause: what a probe costs sets the gap before the next one (the job's
            # first stated 429, taken before its Retry-After, set a gap of 1 s, and the probe
            # then cost a second pause within seconds: 84% of a ten-second 100/s job held).
            self._stated(now, quota)
        if stale:
            return  # sent before the last cut: already known
        self._refused_run += 1
        self._last_refused = now
        if self.closed_since is not None:
            self._trickle(now)  # a request of the trickle, refused: the window is still closed
            return
        if quota is not None or (self.pace is not None and now >= self._hold_until):
            # Over N in this window (stated, or a window seen closing before): closed until the
            # next. (A stated second's, too: sent into at the pace it sets, it refused one more.)
            self._close(now)
            return
        if self._refused_run >= self.CLOSED_RUN:
            # Refused again after the cut: the server's window is full. Only a trickle of
            # requests until it reopens, not a second of them at the cut rate.
            self._close(now)
            return
        if now < self._hold_until:
            return  # one 429 soon after a cut: not another cut yet (a stray, or a burst's end)
        first = self.ceiling is None
        self._cut(now)
        if first:
            # The end of slow start: far past the quota, whatever its shape. Only a trickle until
            # the server takes requests again, not the in-flight ones' worth more 429s.
            self._close(now)

    def _cut(self, now: float) -> None:
        ramp = self.ceiling is None
        # What the server took over the last second (early in the job: since the first answer).
        recent = self._seconds.accepted_after(now - 1.0)
        span = min(1.0, now - self._started) if self._started is not None else 1.0
        accepted = len(recent) / max(span, 0.1)
        # Near the rate, this is a probe just past the quota: cut from the rate, which a count
        # over one second (off by one either way: a tenth at 10/s) would only blur. Far below
        # it, the quota fell: cut from what was accepted.
        near = accepted >= self.NEAR * self._rate
        reference = self._rate if near else accepted
        if reference == self._rate and self.ceiling is not None and now - self._stepped_at < 2 * self.ROUND:
            # The step just taken is what went past: the rate before it held a round (a probe's
            # step is held two).
            reference = max(accepted, self._rate - self._step)
        exact = False
        fixed = None
        resumed, paused_for = self._resumed
        if self._just_after_pause(now, resumed, paused_for):
            # Within a second after a pause of a second or more, the server's current second
            # began during the pause: what it took since the pause is its quota, exactly.
            counted = sum(1 for t in recent if t >= resumed)
            doubted, self._doubted = self._doubted, None
            if not self._plausible(counted, doubted):
                # Under half the ceiling (a ramp's count is at most twice the quota), and no count
                # after a pause before said so: perhaps no count of the quota at all (another
                # client's burst on a shared quota, a gateway's stray 429), which would set the
                # pace at what a fraction of a second took (20/s of 100, for a probe gap). A lone
                # 429's cut instead; a quota that did fall says so again after this pause.
                self._doubted = counted
                self._set_rate(now, self.BACKOFF * self._rate)
                return
            reference = counted
            exact = True
        elif self.ceiling is None:
            # The ramp's first 429: what the server took in the last second (since the start, if
            # shorter) is its quota (a fixed window's, perhaps some over: a 429 at the hold then
            # says so). Taken as a rate over the part of a second the job has run it is a third
            # over at 100/s, twice at 10/s: with a pause, a second pause; without, the second's
            # window is refused again until a count over a whole second corrects it. Held at
            # the unsure share it is 6% under until the next probe, tens of seconds away.
            reference = self._ramp_count(len(recent))
            exact = True
        elif near and self._pause_cost >= 1.0:
            # Each 429 pauses every sender: where the server counts in fixed seconds, two
            # refused ones say its quota exactly (worker/fixed_seconds.py). A backoff from the
            # pace refused cost a pause for each ~8% a ramp's count was over (140 for 100).
            fixed = self._seconds.quota(now)
            if fixed is not None:
                reference, exact = fixed.low, fixed.exact
        if self.stated is not None and self.stated.window <= 1.0:
            reference = min(reference, self.stated.per_second)
        reference = max(self.FLOOR, reference)
        old = self.ceiling
        # Refused at a pace under the ceiling, with a pause: that ceiling was too high (a fixed
        # window's ramp count holds some of the second before). Cut to 2% under the pace
        # refused, it cost a pause for each 2% it was over: back off instead, and take the new
        # pace as the hold under the ceiling, so that the next probe goes just past it (past
        # the pace refused, it would be refused again).
        held_over = (old is not None and near and not exact and self._paused_until > now
                     and self._rate < old * (1 - 1e-9))
        if held_over:
            old = None
            if fixed is None:  # (else the least count fixed seconds allow: no pause more)
                reference = self.BACKOFF * self._rate / self.HOLD_AT
        again = old is not None and abs(reference - old) <= self.CONFIRM * old
        sure = again or exact or self._stated_second()
        if sure:
            self.probe_gap = self._longer_gap(reference)
        else:
            self.probe_gap = self._first_gap(reference) if old is not None else 0.0
        # A probe that pauses every sender (Retry-After) is not repeated to confirm a ceiling:
        # the pace below it is held for the gap the pause's cost allows.
        self.confirmed = sure or self._pause_cost >= 1.0
        if self.confirmed and not self.probe_gap:
            self.probe_gap = self._first_gap(reference)
        self.ceiling = reference
        # Not sure but not to be probed (a pause): held at the cut, under a ceiling that may be high.
        self._hold_share = self.HOLD_AT if sure or held_over else self.UNSURE_HOLD if self.confirmed else self.BACKOFF
        self._set_rate(now, self._hold_share * reference)
        self._held_since = None
        self._ramp_counting = ramp  # its requests still in flight add to the count, until the next decision

    def _ramp_count(self, last_second: int) -> int:
        """The ramp's count of the quota, from what the server took in the last second. A ramp
        that began late in one of the server's seconds counted some of it too, where a fixed
        window's quota is the refused second's alone (110-118 for 100 in 4 of 14 queue runs:
        a second Retry-After pause each). The answers' Date says which of the server's seconds
        each came in: the refused second's count, if at least 0.8 of the last second's. The
        bound is a bet both ways: a fixed window with up to a quarter of its quota taken the
        second before is counted exactly (in a fake-clock model, a second pause in 10-12% of
        ramps instead of 24-32%), and a sliding one, where the last second's count is right,
        is held at most a fifth under until a probe (91.8% of 100/s held in 120 s at worst,
        94.7% without the Date)."""
        counts, self._ramp_seconds = self._ramp_seconds, {}
        refused = self._refused_second
        same = counts.get(refused, 0) if refused is not None else 0
        return same if self.DATED_SHARE * last_second <= same < last_second else last_second

    def _late_ramp_answer(self, server_second: int | None) -> None:
        """A request sent before the ramp's 429 and taken, its answer read after it: the server
        counted it in the second the ramp counted (one of a fixed window, if its Date says the
        same second). Uncounted, two or three of the ramp's last requests in flight left a count
        of 97-98 for 100 in a fifth of queue runs, held at 94-95/s to the job's end."""
        refused = self._refused_second
        if self.ceiling is None or (server_second is not None and refused is not None and server_second != refused):
            return
        self.ceiling += 1
        self._rate = max(self.FLOOR, min(self.MAX, self._hold_share * self.ceiling))
        if self.closed_since is None:  # (else the reopening resumes at it)
            self._pacer.reschedule(self._rate, self._paused_until)

    def _plausible(self, counted: int, doubted: int | None) -> bool:
        """A count after a pause that can be the quota's: at least half the ceiling, or the
        same as the count doubted after the pause before."""
        if self.ceiling is None or counted >= 0.5 * self.ceiling:
            return True
        return doubted is not None and abs(counted - doubted) <= max(1.0, self.CONFIRM * doubted)

    def _stated(self, now: float, quota: Quota) -> None:
        """The gateway said its limit: the ceiling at once (and a window longer than a second)."""
        self.stated = quota
        self.confirmed = True
        if quota.window > 1.0:
            self.window = quota.window
            self.pace = quota.per_second
        else:
            # Held at it, as a fixed --rate at it would be (the pacing margin keeps every server
            # second under it; no count is there to be wrong), and probed as rarely as a ceiling
            # found twice: the statement says all a probe would (and a raised quota is stated
            # by the next 429).
            said = quota.per_second
            if (self.closed_since is not None or now < self._hold_until) and said == self.ceiling:
                # The trickle's requests, refused until the second is over, or a 429 within the
                # hold its statement set: the same refusal, not another probe gap's doubling.
                return
            if self.ceiling is not None and abs(self.ceiling - said) <= self.CONFIRM * said:
                self.probe_gap = self._longer_gap(said)
            else:
                self.probe_gap = self._first_gap(said)
            self.ceiling = said
            self._hold_share = 1.0
            self._held_since = None
            self._set_rate(now, min(self._rate, said))

    def counting(self, quota: Quota | None) -> bool:
        """A 429 would be taken as a count of what the server took: the ramp's first 429, or,
        once a 429 paused every sender for a second or more, any (within a second after the
        pause, what the server took since; later, fixed seconds' count), unless it states the
        limit. Queue mode's learning waits for every replica's answers before it
        (worker/queue/shared_auto.py): a pause follows such a 429 anyway."""
        if quota is not None:
            return False
        return self.ceiling is None or self._pause_cost >= 1.0

    @staticmethod
    def _just_after_pause(now: float, resumed: float, paused_for: float) -> bool:
        """Within a second after a pause of a second or more, which ended at `resumed`: the
        server's current second began during it, so what it took since is its quota."""
        return paused_for >= 1.0 and resumed < now <= resumed + 1.0

    def _stated_second(self) -> bool:
        """The gateway stated a per-second limit: its 429s say the quota, counts are not needed."""
        return self.stated is not None and self.stated.window <= 1.0

    def _stated_window(self) -> bool:
        """The gateway stated a window longer than a second: its length is exact."""
        return self.stated is not None and self.stated.window > 1.0

    def _set_rate(self, now: float, rate: float) -> None:
        self._rate = max(self.FLOOR, min(self.MAX, rate))
        self._step = 0.0
        self._hold_until = now + self.HOLD
        self._stale = self._outstanding
        self._ramp_counting = False
        self._pacer.reschedule(self._rate, self._paused_until)
        self._start_round(now)

    def _first_gap(self, ceiling: float) -> float:
        # Probes that pause every sender are as far apart as the budget says from the start.
        return max(1.0, self.FIRST_PROBE_REQUESTS / ceiling, self._pause_cost / self.PAUSE_BUDGET)

    def _longer_gap(self, ceiling: float) -> float:
        """The ceiling was found again: twice the gap, up to the limit (and never shorter: the
        limit moves a little with the ceiling)."""
        longer = min(self._gap_limit(), max(2 * self.probe_gap, self._first_gap(ceiling)))
        return max(self.probe_gap, longer)

    def _gap_limit(self) -> float:
        costly = 2 * self._pause_cost / self.PAUSE_BUDGET
        cheap = max(self.CHEAP_GAP, self.PROBE_REQUESTS / max(self.ceiling or self._rate, self.FLOOR))
        return min(self.MAX_GAP, max(cheap, costly))

    # -- windows ------------------------------------------------------------------------------

    def _close(self, now: float) -> None:
        self.closed_since = now
        if self.pace is not None and self.window is not None:
            # An opening after which the server took less than half a window's count was
            # perhaps none: an answer to a request sent before the closing, read late (queue
            # mode reads every replica's answers in batches). No boundary is foretold from it.
            self._opening_sure = self._since_open >= 0.5 * self.pace * self.window
        self._trickle(now)

    def _trickle(self, now: float) -> None:
        """While the window is closed, a request now and then tells when it reopens. Once the
        window's length is known, none until the opening it predicts: a learnt length, just
        before one window after the last opening seen (only that one: a length learnt wrong,
        over two windows taken for one, would otherwise pause the job for as long); a stated
        length, the latest the next boundary can be, however many windows on (and before any
        opening is seen, a request every twentieth of the window)."""
        assert self.closed_since is not None
        not_before = self._paused_until
        stated_window = self._stated_window()
        foretold = (self.window is not None and not self._first_span
                    and math.isfinite(self._window_error) and self._opening_sure)
        if foretold:
            assert self.window is not None and self._opened_at is not None  # an opening was seen
            opening = self._opened_at + self.window
            if stated_window:
                # A stated length is exact: the boundary after the closing, however many windows
                # on (a window that did not close had no opening to see). A closing within a
                # quarter window after a boundary may be the window before's, seen late (queue
                # mode reads answers in batches): that boundary, then, at the risk of a trickle,
                # not the next, at the risk of a window lost. Fixed while the window stays closed.
                closed = self.closed_since - max(3 * self._window_error, self.window / 4)
                opening += self.window * max(0, math.ceil((closed - opening) / self.window))
                # Then the latest it can be: our answers' times are later than the server's, so
                # a request sent then is taken, where a trickle from before it cost a 429 each
                # (five a window). Up to W/20 late: a window sent WINDOW_PROBE faster makes up.
                not_before = max(not_before, opening + self._window_error)
            else:
                not_before = max(not_before, opening - max(self.window / 20, 3 * self._window_error))
        # Sparser the longer it stays closed: a request late by a fifth of the time waited.
        first, most = self.TRICKLE
        share = 0.2
        if stated_window and not foretold:
            # No opening seen yet: evenly, W/20 apart. Dense at first, for an opening soon
            # after the closing, the trickle cost a dozen 429s more a closing (18 for 240/20 s).
            assert self.window is not None
            first = most = self.window / 20
        elif self.window is not None and not self._first_span:
            most = min(most, self.window / 20)
        elif self.pace is None and not stated_window:
            # Perhaps only a second's window: one request when it must have reopened, not a
            # trickle into it (a request every quarter second cost up to four 429s a closing).
            at = self._second_reopening(now)
            if at is not None:
                self._spacing = max(self.TRY_GAP, at - now)
                self._pacer.reschedule(1.0 / self._spacing, max(not_before, at))
                return
            share = 0.5  # closed longer than a second's window can be: soon sparse
        spacing = max(first, share * (now - self.closed_since))
        if self.pace is not None and self._opened_at is not None:
            # A window seen reopening has lasted at least since then: a request late by a fifth
            # of that is late by a fifth of the window at most. (From a quarter second after the
            # closing, a window that closed early, its length not yet known, cost 18-23 429s at
            # 240/20 s; 16-20 a tenth of it apart, with three queue replicas. Not past `most`: a
            # window reopened late is learnt as long, too.)
            spacing = max(spacing, self.SPAN_SHARE * (now - self._opened_at))
        spacing = min(most, spacing)
        if not stated_window and (self.window is None or self._first_span):
            # Past `most`, though, once a window of unknown length has lasted long: a try every
            # 2 s cost 42 429s a job of 46 requests against 10 a minute, and nearly 1,800 in an
            # hour's window of 36,000.
            assert self._opened_at is not None
            spacing = max(spacing, min(self.LONGEST_TRY_GAP, self._span_share() * (now - self._opened_at)))
        self._spacing = spacing
        self._pacer.reschedule(1.0 / spacing, not_before)

    def _span_share(self) -> float:
        """How far apart, for the time L a window has lasted, to try it once its length is past
        all guessing: each try costs a 429 (TRY_COST requests' time), 1/s tries each time L grows
        e-fold; the opening is found sL/2 late, N s/2 requests' time (N what the window took),
        weighed four times: the length learnt from it is long too, and the next openings are
        tried early (weighed twice, a 20-s window was learnt 22.3 s long in simulated time).
        Balanced: s = sqrt(TRY_COST / 2N), at most a half: a tenth at N = 240 (under 2 s in a
        20-s window), 0.8% at N = 36,000."""
        return min(0.5, math.sqrt(self.TRY_COST / (2 * max(1, self._since_open))))

    def _second_reopening(self, now: float) -> float | None:
        """When to try a second's window, full when it closed. A sliding one reopens a second
        after the first request it still counted: then. A fixed one, refused then, turned
        before, and within a second after it refused one: a few requests until then find when
        (fewer at a low rate, where each costs more). Both are our answers' times, later than the
        server saw them: a request sent then arrives after the turn. None once all are past.
        The job's first 429 after fewer requests than a second at the start's rate may be a
        stray (another client's burst): a request at once says, first."""
        assert self.closed_since is not None
        closed = self.closed_since
        if self._doubt_ramp and self._few_counted() and now < closed + self.TRY_GAP:
            return closed + self.TRY_GAP
        counted = [t for t in self._seconds.accepted_after(closed - 1.0) if t <= closed]
        oldest = counted[0] if counted else closed
        if self.stated is not None and self.stated.window == 1.0 and len(counted) > self.stated.limit:
            # The window holds the last `limit` taken; the ones before (the ramp's, a probe's)
            # were the window before's. A try a second after the oldest came before the turn:
            # half a second of tries at 100/s, each a 429.
            oldest = counted[-int(self.stated.limit)]
        if oldest + 1.0 > now:
            return oldest + 1.0
        if closed + 1.0 > now:
            # k tries over the second cost k/2 429s and come 1/2k s late, on average: with a 429
            # worth TRY_COST requests' time, k = sqrt(rate / TRY_COST) (4/rate apart, it was 20
            # tries a closing at 100/s and more, the ramp's closing of a window quota included).
            spacing = max(self.TRY_GAP, min(self.FIXED_TRY_WAIT, math.sqrt(self.TRY_COST / self._rate)))
            return min(closed + 1.0, now + spacing)
        return None

    def _few_counted(self) -> bool:
        """The ceiling counts fewer requests than a second at the start's rate: the ramp's 429
        may have been a stray. Its closing is tried at once; taken, slow start goes on."""
        return self.ceiling is not None and self.ceiling < self.START

    def _reopened(self, now: float) -> None:
        """The first request accepted after a closed window: the window's count and length."""
        assert self.closed_since is not None and self._opened_at is not None
        closed_for, self.closed_since = now - self.closed_since, None
        doubt, self._doubt_ramp = self._doubt_ramp, False  # once only
        # It reopened between the last refused request and this one: half a trickle's spacing ago.
        opened = now - 0.5 * self._spacing
        if closed_for < self.MIN_CLOSED and self.pace is None and not self._stated_window():
            self._second_reopened(now, doubt)
            return
        now = opened
        span = now - self._opened_at
        if self.stated is not None and self.stated.window > 1.0:
            pace = self.stated.per_second
        elif self.window is None or self._first_span:
            # The first windows: what was taken from the opening before (or the start) to this
            # one. From the start it overestimates (the job began within a window): the next
            # window closes early, and says N exactly.
            pace = (self._since_open - 1) / max(span, 1.0)
        else:
            # N: what was accepted in the window that just ended, [opening - W, opening).
            since = now - self.window
            pace = sum(1 for t in self._window_times if since <= t < now) / self.window
        if not self._stated_window():
            # Openings come at the window's boundaries: the time between two is a whole number
            # of windows (the first span, from the start, is at most one). No window stays
            # closed longer than it lasts.
            # Each opening is known to within half the trickle's spacing: of the lengths the
            # openings give, keep the most precise.
            error = 0.5 * self._spacing
            if self.window is None or self._first_span or closed_for > self.window:
                self._first_span = self.window is None
                self.window, self._window_error = span, error + self._open_error
            else:
                windows = max(1, round(span / self.window))
                candidate = (error + self._open_error) / windows
                if candidate < self._window_error:
                    self.window, self._window_error = span / windows, candidate
            self._open_error = error
        else:
            # A stated length is exact: the next opening is as well known as this one.
            self._window_error = 0.5 * self._spacing
        self.pace = pace
        self.ceiling = pace
        self._probe_step = 0.0
        self._opened_at = now
        self._since_open = self._in_window = 1
        self._window_end = now + self.window if self.window is not None else math.inf
        self._set_rate(now, pace)

    def _second_reopened(self, now: float, doubt: bool) -> None:
        """A short run of 429s: a second's window that was full. What it took is the quota,
        counted over the second before the last request refused (the window was still closed
        then). That count may hold some of the second before (and a bucket's burst): if it is
        too high, the next second fills early and is counted again, at a steady pace. Counted
        up to this answer instead, it could miss most of the window, and a ceiling too low is
        held for the whole probe gap."""
        if self._stated_second():
            self._pacer.reschedule(self._rate, self._paused_until)  # the statement set the pace
            return
        refused = self._last_refused
        clean = self._started is not None and self._started <= refused - 1.0 and self._paused_until <= refused - 1.0
        if doubt and self._few_counted() and not clean and self._refused_run == 1 and self._paused_until <= refused:
            # The ramp's first 429, and the next request taken: perhaps no second's window was
            # full (a stray 429, a bucket's burst spent), and its count no quota (held for a
            # probe gap, one request at the start's count would be a job at 1/s). Slow start
            # goes on from it, once: a fixed window that just turned is found again in a round.
            self.ceiling, self.confirmed, self.probe_gap = None, False, 0.0
            self._pacer.reschedule(self._rate, self._paused_until)
            self._start_round(now)
            return
        took = sum(1 for t in self._seconds.accepted_after(refused - 1.0) if t < refused) if clean else 0
        if took < 1:  # a count over part of a second (the job's first, or a pause) says nothing
            self._pacer.reschedule(self._rate, self._paused_until)
            return
        old = self.ceiling
        again = old is not None and abs(took - old) <= self.CONFIRM * old
        if again:
            self.probe_gap = self._longer_gap(took)
        elif not self.confirmed or old is None or took < old:
            self.probe_gap = self._first_gap(took)
        self.confirmed = True
        self._hold_share = self.HOLD_AT
        self.ceiling = float(took)
        self._set_rate(now, self.HOLD_AT * took)
        self._held_since = None

    def _window_passed(self, now: float) -> None:
        """A whole window without closing: the next one is probed, a little faster."""
        assert self.window is not None and self.pace is not None
        self._window_end += self.window * max(1, math.ceil((now - self._window_end) / self.window))
        took, self._in_window = self._in_window, 0
        if self.closed_since is not None:
            return
        if self._first_span:
            # The length is the first span's, from the start: the real window is longer, and
            # the pace, over N/W, closes it within one. If it does not, after a few spans,
            # probe as usual.
            assert self._opened_at is not None
            if now < self._opened_at + 3 * self.window:
                return
            self._first_span = False
        if self._probe_step > 0:  # the probe did not close it: the quota grew; by how much,
            self.pace = max(self.pace, took / self.window)  # a window sent at twice says
            self._probe_step = max(1.0, 3 * self._probe_step)
        else:
            self._probe_step = self.WINDOW_PROBE
        self._rate = min(self.MAX, self.pace * (1 + self._probe_step))
        self._pacer.speed_up(self._rate)

    # -- rounds -------------------------------------------------------------------------------

    def _queueing_latency(self) -> float:
        """Answers slower than this queue somewhere (the server, the network, this process)."""
        return self.QUEUEING * self.base_latency + 0.005

    def _ramp_in_flight(self) -> int | None:
        """How many requests may be in flight (or waiting for their slot) during slow start: what
        the rate needs at the latency of unqueued answers. When answers queue in this process or
        beside it (a busy core: 30-110 ms where 1.5 ms is unqueued), the rest wait here, where the
        first 429 still stops them, not on the wire, where they arrive after the quota is full and
        are refused (7-49 at once at a window quota's closing, four jobs ramping on one core).
        No bound before the first answer, nor once the quota is known (nothing ramps then)."""
        if self.ceiling is not None or self.pace is not None or self.closed_since is not None:
            return None
        if not math.isfinite(self.base_latency):
            return None
        return max(self.RAMP_IN_FLIGHT, math.ceil(self._rate * self._queueing_latency()) + 2)

    def _end_round(self, now: float) -> None:
        length = self._round_length()
        # (+1: the first grant after a speed-up still came at the old interval.)
        used = self._granted + 1 >= self.USED * self._rate * (now - self._round_end + length)
        if used and now >= self._hold_until and self.closed_since is None and self.pace is None:
            self._grow(now)
        self._start_round(now)

    def _grow(self, now: float) -> None:
        if self.ceiling is None:
            # Answers slower than the quickest seen: requests queue somewhere (the server, the
            # network, this process), and what is in flight when the first 429 comes is refused.
            queueing = self.latency > self._queueing_latency()
            self._rate = min(self.MAX, self._rate * (self.QUEUEING_GROWTH if queueing else 2))
            self._pacer.speed_up(self._rate)
            return
        ceiling = self.ceiling
        if self.confirmed and self._rate >= self._hold_share * ceiling * (1 - 1e-9):
            if self._held_since is None:
                self._held_since = now
            if now < self._held_since + self.probe_gap:
                return  # hold; probe later
        base = min(self.STEP * ceiling, self.PER_SUCCESS * ceiling * self._accepted)
        # One round past the ceiling is not a raised quota yet: a round is a second, and a fixed
        # window it straddled took a second's worth at the old pace and the new. Another round
        # first, and the step only doubles: growing fourfold from one round, the pace ran to 2.7
        # times a fixed window's quota in the second it takes to refuse, and the count there was
        # held over the quota (a pause each time with Retry-After; without, a ceiling 8-26% over,
        # found again 2% lower at each 429, once counts came exact: docs/design.md#adaptive-rate).
        # A stated limit needs no count: the next 429 says how far the quota grew, so one round
        # past the ceiling (a sliding window's refusal) is enough.
        if (self._rate > ceiling and self._step <= base and now < self._stepped_at + 2 * self.ROUND
                and not self._stated_second()):
            return
        if self._rate > ceiling:
            self._step = max(2 * self._step, base)  # past the old quota: it grew; find how far
        else:
            self._step = base
        rate = self._rate + self._step
        self._stepped_at = now
        if self.confirmed and self._held_since is None:
            rate = min(rate, self._hold_share * ceiling)  # climb to the hold, then wait there
        elif self.confirmed and self._rate <= ceiling:
            # The hold is over: the probe goes a step past the ceiling at once, not by steps from
            # the hold, so a raised quota is found within a few seconds. A round there (a second's
            # window refuses only at its end), then short rounds if nothing was refused. Where
            # the 429s state the limit, two steps: short rounds at once (the next 429 says how far
            # the quota grew), or a doubled quota waited up to 8 s, not 5.
            steps = 2 if self._stated_second() else 1
            rate = max(rate, (1 + steps * self.STEP) * ceiling)
        self._rate = min(self.MAX, rate)
        self._pacer.speed_up(self._rate)

    def _start_round(self, now: float) -> None:
        self._round_end = now + self._round_length()
        self._granted = self._accepted = 0

    def _round_length(self) -> float:
        # Short rounds while nothing is known: the quota is found fast; but long enough for a
        # few answers to come back, so that little is in flight when the first 429 comes.
        if self.ceiling is None:
            return min(self.SLOW_ROUND_MAX, max(self.SLOW_ROUND, self.LATENCY_ROUNDS * self.latency))
        # A raised quota is found fast, unless each 429 pauses every sender (Retry-After): a
        # fixed window refuses only once its count is used, and quick rounds ran the pace to
        # 2-4 times the new quota by then (a pause, and a ceiling counted there off by 7%).
        if self._rate > self.QUICK_PAST * self.ceiling and self._pause_cost < 1.0:
            return self.SLOW_ROUND_MAX
        return self.ROUND


def make_limiter(rate: float | str | None) -> Limiter:
    """The limiter for a job's `rate` setting: a number (0: none) or "auto"."""
    if rate == "auto":
        return AdaptiveRateLimiter()
    return RateLimiter(float(rate) if rate else None)
