"""Gateway quotas: which API request is refused with a 429, and what the 429 says.

Three models, each pure (the time is passed in, so tests drive them with a fake clock):

- FixedWindow: N requests per window, windows aligned on the server's clock
  (window = floor(now / length)), as Huawei's API gateway counts `limit:600,time:1 minute`;
- TokenBucket: RATE tokens a second, BURST at most;
- SlidingWindow: at most R requests in any 1 s (the simulator's original `--rate-limit`).

A Gate holds the model of the moment, the scheduled changes (`--quota-change 30s:50/s`), the
shape of its 429s (Retry-After or not, the limit stated in the body or not) and its counters.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# A plain-text limit as Huawei's and OpenStack's throttling policies write it: 100/s, 600/min,
# 36000/h, 240/20s.
_WINDOW = re.compile(r"\s*(\d+)\s*(?:/\s*(\d*)\s*([a-z]*))?\s*")
_UNITS = {"": 1, "s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60,
          "minutes": 60, "h": 3600, "hour": 3600, "hours": 3600}
_AFTER = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*")
# How many per-window counters the stats keep (a long run at 1 s windows stays small).
MAX_BINS = 100_000


def _time_text(seconds: int) -> str:
    """The gateway's words for a window: 'time:1 second', 'time:1 minute', 'time:20 second'."""
    for unit, length in (("hour", 3600), ("minute", 60)):
        if seconds % length == 0:
            return f"{seconds // length} {unit}"
    return f"{seconds} second"


def _window_text(seconds: int) -> str:
    return {1: "s", 60: "min", 3600: "h"}.get(seconds, f"{seconds}s")


class Model(Protocol):
    def admit(self, now: float) -> bool:
        """Count a request arriving at `now`: True if it is within the quota."""

    def reopens_in(self, now: float) -> float:
        """After a refusal: seconds until a request would be admitted again."""

    def describe(self) -> str:
        """The quota as a user writes it: 600/min, bucket 10:20, 100/s sliding."""

    def stated(self) -> tuple[str, str]:
        """(limit, time) as the gateway's 429 states them."""

    def bin_of(self, now: float) -> tuple[int, int]:
        """(window length in seconds, window index) the stats count `now` in."""

    @property
    def per_second(self) -> float:
        """The quota's long-run requests per second."""


class FixedWindow:
    """N requests per window of `window` seconds; a window starts at a multiple of its length."""

    __slots__ = ("limit", "window", "_index", "_count")

    def __init__(self, limit: int, window: int = 1):
        if limit < 1 or window < 1:
            raise ValueError(f"a quota needs a positive count and window, got {limit}/{window}s")
        self.limit = limit
        self.window = window
        self._index = -1
        self._count = 0

    def admit(self, now: float) -> bool:
        index = math.floor(now / self.window)
        if index != self._index:
            self._index, self._count = index, 0
        if self._count >= self.limit:
            return False
        self._count += 1
        return True

    def reopens_in(self, now: float) -> float:
        return (math.floor(now / self.window) + 1) * self.window - now

    def describe(self) -> str:
        return f"{self.limit}/{_window_text(self.window)}"

    def stated(self) -> tuple[str, str]:
        return str(self.limit), _time_text(self.window)

    def bin_of(self, now: float) -> tuple[int, int]:
        return self.window, math.floor(now / self.window)

    @property
    def per_second(self) -> float:
        return self.limit / self.window


class TokenBucket:
    """`rate` tokens a second into a bucket of `burst`; a request takes one. Starts full."""

    __slots__ = ("rate", "burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: int):
        if not rate > 0 or burst < 1:
            raise ValueError(f"a token bucket needs a positive rate and burst, got {rate:g}:{burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None

    def _refill(self, now: float) -> None:
        if self._last is not None and now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        if self._last is None or now > self._last:
            self._last = now

    def admit(self, now: float) -> bool:
        self._refill(now)
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def reopens_in(self, now: float) -> float:
        self._refill(now)
        return max(0.0, (1.0 - self._tokens) / self.rate)

    def describe(self) -> str:
        return f"bucket {self.rate:g}:{self.burst}"

    def stated(self) -> tuple[str, str]:
        return f"{self.rate:g}", "1 second"

    def bin_of(self, now: float) -> tuple[int, int]:
        return 1, math.floor(now)

    @property
    def per_second(self) -> float:
        return self.rate


class SlidingWindow:
    """At most `rate` requests in any `window` seconds (arrival times of admitted requests).
    Refused requests are not remembered, so a client hammering on 429s does not extend them.
    `retry_after` is the fixed Retry-After of `--rate-limit --retry-after N` (None: computed by
    the Gate, or none)."""

    __slots__ = ("rate", "retry_after", "window", "_times")

    def __init__(self, rate: int, retry_after: int | None = None, window: float = 1.0):
        if rate < 1:
            raise ValueError(f"a rate limit must be a positive integer, got {rate!r}")
        self.rate = rate
        self.retry_after = retry_after
        self.window = window
        self._times: deque[float] = deque()

    def admit(self, now: float) -> bool:
        times = self._times
        cutoff = now - self.window
        while times and times[0] <= cutoff:
            times.popleft()
        if len(times) >= self.rate:
            return False
        times.append(now)
        return True

    def reopens_in(self, now: float) -> float:
        return max(0.0, self._times[0] + self.window - now) if self._times else 0.0

    def describe(self) -> str:
        return f"{self.rate}/s sliding"

    def stated(self) -> tuple[str, str]:
        return str(self.rate), "1 second"

    def bin_of(self, now: float) -> tuple[int, int]:
        return 1, math.floor(now)

    @property
    def per_second(self) -> float:
        return self.rate / self.window


def parse_window(text: str) -> FixedWindow:
    """'100/s', '600/min', '36000/h', '240/20s' (a bare number is per second) -> a fixed window."""
    match = _WINDOW.fullmatch(str(text).lower())
    unit = _UNITS.get(match.group(3) or "") if match else None
    count = int(match.group(2)) if match and match.group(2) else 1
    if match is None or unit is None or count < 1 or int(match.group(1)) < 1:
        raise ValueError(f"a quota looks like 100/s, 600/min, 36000/h or 240/20s, got {text!r}")
    return FixedWindow(int(match.group(1)), count * unit)


def parse_bucket(text: str) -> TokenBucket:
    """'RATE:BURST', e.g. '10:20' -> a token bucket."""
    rate, sep, burst = str(text).partition(":")
    try:
        if not sep:
            raise ValueError
        return TokenBucket(float(rate), int(burst))
    except ValueError:
        raise ValueError(f"a token bucket looks like RATE:BURST (e.g. 10:20), got {text!r}") from None


def parse_model(text: str) -> FixedWindow | TokenBucket:
    """A window quota ('50/s') or, with a colon, a token bucket ('10:20')."""
    return parse_bucket(text) if ":" in str(text) else parse_window(text)


@dataclass(frozen=True, slots=True)
class QuotaChange:
    """After `after` seconds of the gate's life, the quota becomes `quota` (a parse_model text)."""

    after: float
    quota: str

    def __post_init__(self) -> None:
        if not self.after >= 0:
            raise ValueError(f"a quota change's time must not be negative, got {self.after!r}")
        parse_model(self.quota)  # refuse a bad spec now, not when it falls due

    @classmethod
    def parse(cls, spec: str) -> QuotaChange:
        """'30s:50/s', '2min:300/min', '45:bucket-like 10:20' (seconds when no unit)."""
        when, sep, quota = str(spec).partition(":")
        match = _AFTER.fullmatch(when.lower())
        unit = _UNITS.get(match.group(2)) if match else None
        if not sep or match is None or unit is None:
            raise ValueError(f"a quota change looks like 30s:50/s (after 30 s, 50/s), got {spec!r}")
        return cls(float(match.group(1)) * unit, quota.strip())


@dataclass(frozen=True, slots=True)
class Refusal:
    retry_after: str | None  # the header's value, or None for no header
    limit: str | None  # the stated limit and window, or None for the bare message
    time: str


class Gate:
    """The quota a simulator enforces: the model of the moment, its scheduled changes, the shape
    of its 429s and what it admitted and refused in each window.

    retry_after: False (no header), True (seconds until the window reopens or the next token,
    rounded up), or a fixed number of seconds (the original `--retry-after N`).
    """

    def __init__(self, model: Model, *, retry_after: bool | int = False, limit_stated: bool = True,
                 changes: Sequence[QuotaChange] = (), clock: Callable[[], float] = time.time):
        self.model = model
        self.retry_after = retry_after
        self.limit_stated = limit_stated
        self.clock = clock
        self.started = clock()
        self.pending = sorted(changes, key=lambda c: c.after)
        self.applied: list[dict[str, Any]] = []
        self.accepted = 0
        self.throttled = 0
        # (window length, window index) -> [accepted, throttled, the quota it was counted under]
        self.bins: dict[tuple[int, int], list[Any]] = {}

    def check(self) -> Refusal | None:
        """Count one API request: None if admitted, else what its 429 says."""
        now = self.clock()
        if self.pending and now - self.started >= self.pending[0].after:
            self._change(now)
        model = self.model
        admitted = model.admit(now)
        key = model.bin_of(now)
        counts = self.bins.get(key)
        if counts is None:
            if len(self.bins) >= MAX_BINS:
                del self.bins[next(iter(self.bins))]
            counts = self.bins[key] = [0, 0, model.describe()]
        if admitted:
            self.accepted += 1
            counts[0] += 1
            return None
        self.throttled += 1
        counts[1] += 1
        return self._refusal(now)

    def _change(self, now: float) -> None:
        while self.pending and now - self.started >= self.pending[0].after:
            change = self.pending.pop(0)
            self.model = parse_model(change.quota)
            self.applied.append({"after": change.after, "quota": self.model.describe(),
                                 "at": self.started + change.after})

    def _refusal(self, now: float) -> Refusal:
        model = self.model
        header = None
        fixed = getattr(model, "retry_after", None)
        if fixed is not None:
            header = str(fixed)
        elif self.retry_after is True:
            header = str(max(1, math.ceil(model.reopens_in(now))))
        elif self.retry_after is not False:
            header = str(self.retry_after)
        limit, period = model.stated()
        return Refusal(header, limit if self.limit_stated else None, period)

    def stats(self) -> dict[str, Any]:
        """What the gateway saw, for a bench to judge a client from the server's side."""
        return {
            "quota": self.model.describe(),
            "per_second": self.model.per_second,
            "retry_after": self.retry_after,
            "limit_stated": self.limit_stated,
            "started": self.started,
            "changes_pending": [{"after": c.after, "quota": c.quota} for c in self.pending],
            "changes_applied": list(self.applied),
            "accepted": self.accepted,
            "throttled": self.throttled,
            "windows": [{"start": length * index, "seconds": length, "quota": quota,
                         "accepted": accepted, "throttled": throttled}
                        for (length, index), (accepted, throttled, quota) in self.bins.items()],
        }
