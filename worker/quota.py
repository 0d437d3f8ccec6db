"""Rates as quotas are written: `10`, `10/s`, `600/min`, `36000/h`, `240/20s`.

A `Rate` is a number of requests per second (a float, so it goes wherever a rate did) that
remembers the words it was given in, so the manifest, the logs and the summary show `600/min`
where the user wrote `600/min`. A `Quota` is a limit per window as a gateway states it in a 429
(`limit:600,time:1 minute`): the window matters to `--rate auto`, which pauses a closed window
out instead of taking it for a fallen quota.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

# The longest window a rate may be written over, and the fastest rate: beyond them a value is
# a typo, not a quota (a day's quota is 86400 s; nobody's API takes a million requests a second).
MAX_WINDOW = 86_400.0
MAX_RATE = 1_000_000.0

UNITS = {
    "": 1.0, "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?"
# "10", "10/s", "600/min", "240/20s", "600 / 1 minute"
_RATE_RE = re.compile(rf"\s*({_NUMBER})\s*(?:/\s*({_NUMBER})?\s*([a-z]*))?\s*", re.I)

SPELLING = ("a number of requests per second (10), or per window (10/s, 600/min, 36000/h, "
            "240/20s), at least 0 (0 = no limit)")


@dataclass(frozen=True, slots=True)
class Quota:
    """`limit` requests in each window of `window` seconds."""

    limit: float
    window: float

    @property
    def per_second(self) -> float:
        return self.limit / self.window

    def __str__(self) -> str:
        return f"{self.limit:g}/{_window_text(self.window)}"


class Rate(float):
    """Requests per second, as written: `Rate.parse("600/min") == 10.0`, `str()` gives
    "600/min" back. `window` is the window it was written over (1 for a bare number)."""

    text: str
    window: float

    def __new__(cls, per_second: float, text: str | None = None, window: float = 1.0) -> Rate:
        rate = super().__new__(cls, per_second)
        rate.text = text if text is not None else f"{per_second:g}"
        rate.window = window
        return rate

    @classmethod
    def parse(cls, value: Any) -> Rate:
        """A rate from a flag, a variable or a config file; ValueError names the spellings."""
        if isinstance(value, Rate):
            return value
        if isinstance(value, bool):
            raise ValueError(SPELLING)
        if isinstance(value, int | float):
            number, window, text = float(value), 1.0, f"{value:g}"
        elif isinstance(value, str):
            match = _RATE_RE.fullmatch(value)
            unit = (match.group(3) or "").lower() if match else ""
            # After a slash, a unit: "240/20" could mean seconds or minutes.
            if match is None or unit not in UNITS or ("/" in value and not unit):
                raise ValueError(SPELLING)
            number = float(match.group(1))
            window = (float(match.group(2)) if match.group(2) else 1.0) * UNITS[unit]
            text = " ".join(value.split())
        else:
            raise ValueError(SPELLING)
        if not (math.isfinite(number) and number >= 0 and 0 < window <= MAX_WINDOW
                and number / window <= MAX_RATE):
            raise ValueError(SPELLING)
        return cls(number / window, text, window)

    @property
    def quota(self) -> Quota:
        return Quota(float(self) * self.window, self.window)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Rate({self.text!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Rate, (float(self), self.text, self.window))


def as_written(rate: float | str | None) -> float | str | None:
    """For a manifest or a log: 600/min as written, a bare number as a number."""
    if isinstance(rate, Rate) and "/" in rate.text:
        return rate.text
    return float(rate) if isinstance(rate, float) else rate


def rate_text(rate: float | str | None) -> str:
    """A rate for people: as written when it was written with a unit, else N/s."""
    if rate is None or rate == "auto" or isinstance(rate, str):
        return str(rate)
    if isinstance(rate, Rate) and rate.window != 1.0:
        return f"{rate.text} ({float(rate):g}/s)"
    return f"{float(rate):g}/s"


def _window_text(seconds: float) -> str:
    for unit, length in (("h", 3600.0), ("min", 60.0)):
        if seconds >= length and seconds % length == 0:
            count = seconds / length
            return unit if count == 1 else f"{count:g}{unit}"
    return "s" if seconds == 1 else f"{seconds:g}s"
