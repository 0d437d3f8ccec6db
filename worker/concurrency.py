"""How many requests to keep in flight (`--concurrency auto`, the default), so users need not
know Little's law: in flight = throughput × latency.

To send `rate` requests a second when each takes `latency` seconds, rate × latency requests must
be in flight. Latencies spread, so the sizer keeps HEADROOM times that, plus SPARE, learned from
an average of the latencies seen, and follows the rate when it changes (`--rate auto`). Bounded:
at least MIN, at most MAX (sockets and memory). Without a rate limit there is nothing to size
from: UNLIMITED, where aiohttp on one core does best (32-64 requests in flight, see DESIGN.md).
"""

from __future__ import annotations

import math
from typing import Callable

MIN = 4
MAX = 512
UNLIMITED = 64
HEADROOM = 1.5
SPARE = 2
SMOOTHING = 0.1  # weight of each new latency in the moving average
FIRST_GUESS = 0.1  # seconds of latency assumed before the first answer


def size_for(rate: float | None, latency: float) -> int:
    """Requests in flight that let `rate` per second through at `latency` seconds each."""
    if not rate:
        return UNLIMITED
    return max(MIN, min(MAX, math.ceil(rate * latency * HEADROOM) + SPARE))


class ConcurrencySizer:
    """The target number of senders, from the limiter's current rate and observed latency."""

    def __init__(self, rate: Callable[[], float | None]) -> None:
        self._rate = rate
        self.latency: float | None = None  # moving average, seconds

    def observe(self, latency: float) -> None:
        if self.latency is None:
            self.latency = latency
        else:
            self.latency += SMOOTHING * (latency - self.latency)

    @property
    def target(self) -> int:
        return size_for(self._rate(), FIRST_GUESS if self.latency is None else self.latency)
