"""How many requests to keep in flight (`--concurrency auto`, the default), so users need not
know Little's law: in flight = throughput × latency.

To send `rate` requests a second when each takes `latency` seconds, rate × latency requests must
be in flight. Latencies spread, and a spike would starve the rate, so the latency used is the
larger of HEADROOM times its average and the average plus four mean deviations (TCP's
retransmission-timeout estimator, RFC 6298), plus SPARE requests. It follows the rate when that
changes (`--rate auto`). Bounded: at least MIN, at most MAX (sockets and memory). Without a rate
limit there is nothing to size from: UNLIMITED, where aiohttp on one core does best.

Senders are added at once when the target rises, and retired only when it has stayed lower for
SHRINK_AFTER seconds: latency swings from one moment to the next on a busy client. The
measurements behind each number: docs/design.md#concurrency.
"""

from __future__ import annotations

import heapq
import math
import operator
from collections import deque
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", int, float)

MIN = 4
MAX = 512
UNLIMITED = 64
AUTO_START = 16  # senders before the first answers say more (and a queue consumer's read size)
HEADROOM = 1.5
SPARE = 2
FIRST_GUESS = 0.1  # seconds of latency assumed before the first answer
SHRINK_AFTER = 2.0  # seconds a lower target must last before senders retire
RECENT = 32  # answers whose quickest say how long every request now queues ...
QUICK_RANK = 4  # ... the 4th quickest of them: a lone outlier (a cached answer) does not count
QUICK_MEMORY = 10.0  # seconds a floor is remembered as how long a request takes unqueued
QUEUE_TOLERANCE = 3.0  # a recent floor up to this many times that is a spread, not a queue


def size_for(rate: float | None, latency: float) -> int:
    """Requests in flight that let `rate` per second through at `latency` seconds each."""
    if not rate:
        return UNLIMITED
    return max(MIN, min(MAX, math.ceil(rate * latency) + SPARE))


class ConcurrencySizer:
    """The target number of senders, from the limiter's current rate and observed latency."""

    def __init__(self, rate: Callable[[], float | None]) -> None:
        self._rate = rate
        self.latency: float | None = None  # smoothed average, seconds (RFC 6298's SRTT)
        self.deviation = 0.0  # smoothed mean deviation (RTTVAR)
        self._recent: deque[tuple[float, int]] = deque()  # (time, target), targets decreasing
        self._last: deque[float] = deque(maxlen=RECENT)  # latencies of the last applied rows
        self._floors: deque[tuple[float, float]] = deque()  # (time, floor), floors increasing
        self.unqueued = 1.0  # the share of the latency that is not queueing

    def observe(self, latency: float, applied: bool = True) -> None:
        """An answer's latency; `applied`: the row's request did the work (errors, 429s, are
        often answered quicker, and would pass for a queue's absence)."""
        if self.latency is None:
            self.latency, self.deviation = latency, latency / 2
        else:
            self.deviation += (abs(self.latency - latency) - self.deviation) / 4
            self.latency += (latency - self.latency) / 8
        if applied:
            self._last.append(latency)

    @property
    def planned_latency(self) -> float:
        if self.latency is None:
            return FIRST_GUESS * HEADROOM
        return max(self.latency * HEADROOM, self.latency + 4 * self.deviation) * self.unqueued

    @property
    def target(self) -> int:
        return size_for(self._rate(), self.planned_latency)

    def keep(self, now: float) -> int:
        """How many senders to keep at `now`: the largest target of the last SHRINK_AFTER
        seconds (a sliding maximum over the targets seen at each call)."""
        self._measure_queue(now)
        return _slide(self._recent, now, self.target, SHRINK_AFTER, operator.le)

    def _measure_queue(self, now: float) -> None:
        """`unqueued`, from the recent floor against the lowest of the last QUICK_MEMORY seconds."""
        if len(self._last) < RECENT:
            return
        floor = heapq.nsmallest(QUICK_RANK, self._last)[-1]
        if floor <= 0:
            return  # a clock that did not move: nothing to scale by
        lowest = _slide(self._floors, now, floor, QUICK_MEMORY, operator.ge)
        self.unqueued = min(1.0, QUEUE_TOLERANCE * lowest / floor)


def _slide(window: deque[tuple[float, T]], now: float, value: T, span: float,
           outdone: Callable[[T, T], bool]) -> T:
    """Add (now, value) to a window of the last `span` seconds and return its extreme. Entries
    `outdone` by the new value can never be the extreme again and are dropped, so the deque stays
    ordered and the extreme is its oldest entry."""
    while window and outdone(window[-1][1], value):
        window.pop()
    window.append((now, value))
    while window[0][0] <= now - span:
        window.popleft()
    return window[0][1]
