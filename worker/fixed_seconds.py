"""A per-second quota counted in fixed seconds of the server's clock: where its seconds start, and
what each takes, from the times our answers came.

A fixed second takes `limit` requests, then refuses every one until the next second starts. A
count over the second before a 429 on our own clock straddles two of the server's seconds: the
ramp's, thousands a second at its end, counted 140 for a quota of 100. Where the server's seconds
start is found by two refused seconds: at the right phase, each took the same count before its
first 429 and nothing after it, and no second without a 429 took more. Fixed seconds are whole
seconds apart, so one phase explains all of them, and that count is the quota, exactly.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import deque
from itertools import takewhile
from typing import NamedTuple

SPAN = 4.0  # seconds of answers kept: the ramp's second, its pause, and the next refused second
STEP = 0.001  # the phases tried: a millisecond apart, finer than our answers' jitter
TOLERANCE = 0.02  # counts within this share of each other (at least one) are the same count
WIDEST = 1.15  # phases that explain the answers with counts further apart say too little


class FixedSeconds:
    """The times of our accepted and refused answers over the last SPAN seconds."""

    def __init__(self, from_start: bool = True) -> None:
        """`from_start`: the first answer is the job's (not a learning taken over mid-job, which
        did not see the answers before its first)."""
        self._accepted: deque[float] = deque()
        self._refused: deque[float] = deque()
        self._since = -math.inf if from_start else math.nan  # every answer since this time is kept

    def accepted(self, now: float) -> None:
        self._keep(self._accepted, now)

    def refused(self, now: float) -> None:
        self._keep(self._refused, now)

    def accepted_after(self, after: float) -> list[float]:
        """The times of the answers accepted after `after` (SPAN seconds back at least), oldest
        first: read from the newest end, so a look one second back costs one second's answers."""
        times = list(takewhile(lambda t: t > after, reversed(self._accepted)))
        times.reverse()
        return times

    def _keep(self, times: deque[float], now: float) -> None:
        if math.isnan(self._since):
            self._since = now
        times.append(now)
        if times[0] < now - 2 * SPAN:  # trimmed now and then, not at every answer
            self._since = now - SPAN
            for kept in (self._accepted, self._refused):
                while kept and kept[0] < self._since:
                    kept.popleft()

    def quota(self, now: float) -> Fit | None:
        """The counts of fixed seconds that explain every answer kept, or None: fewer than two
        refused seconds, no phase that explains them (a sliding window, a bucket, a quota that
        changed), or phases that explain them with counts too far apart to choose from."""
        accepted, refused = list(self._accepted), list(self._refused)
        if len(refused) < 2 or refused[-1] - refused[0] < 0.5:
            return None  # (all in one second, whatever the phase: the ramp's in-flight 429s)
        best, counts = math.inf, []
        for step in range(round(1 / STEP)):
            misfit, count = _fit(accepted, refused, step * STEP, self._since, now)
            if misfit < best:
                best, counts = misfit, [count]
            elif misfit == best:
                counts.append(count)
        # The phases that explain the answers best, within our answers' jitter (a count or two).
        if not counts or min(counts) < 1 or best > _slack(max(counts)) or max(counts) > WIDEST * min(counts):
            return None
        return Fit(min(counts), max(counts))


class Fit(NamedTuple):
    """The counts the phases that explain the answers give. Two refused seconds whose starts
    our pace crossed alike (the ramp's at about the pace held after it) are explained by a
    range of phases, each with its count: the quota is one of them, the least is sure to hold."""

    low: int
    high: int

    @property
    def exact(self) -> bool:
        return self.high - self.low <= _slack(self.high)


def _slack(count: int) -> float:
    return max(1.0, TOLERANCE * count)


def _fit(accepted: list[float], refused: list[float], phase: float, since: float,
         now: float) -> tuple[float, int]:
    """How badly seconds starting at `phase` (mod 1) explain the answers, and the count they give
    (-1: fewer than two refused seconds lie wholly within what is kept)."""
    firsts: dict[int, float] = {}  # each refused second (counted from `phase`): its first 429
    for t in refused:
        firsts.setdefault(math.floor(t - phase), t)
    counts, after = [], 0
    for second, first in firsts.items():
        start = phase + second
        if start < since:
            continue  # begun before what is kept: its count is short
        counts.append(bisect_left(accepted, first) - bisect_left(accepted, start))
        after += bisect_left(accepted, start + 1) - bisect_right(accepted, first)  # taken after a 429
    if len(counts) < 2:
        return math.inf, -1
    count = min(counts)
    over = 0  # whole seconds without a 429 that took more than the count
    for second in range(math.ceil(max(since, accepted[0] if accepted else now) - phase),
                        math.floor(now - phase)):
        if second not in firsts:
            start = phase + second
            over += max(0, bisect_left(accepted, start + 1) - bisect_left(accepted, start) - count)
    return max(counts) - count + after + over, count
