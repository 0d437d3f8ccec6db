"""ISO-8601 UTC time stamps, made by hand: each log line and each result carries one, and
`datetime.now(UTC).isoformat()` cost more than the rest of a result (docs/design.md#log-events).

The text is byte for byte the standard library's (tests/test_stamps.py compares them over many
instants): the date and time to the second come from `datetime` itself, once a second, and only
the fraction is formatted here. The clock is read as `datetime.now` reads it (the system clock,
floored to the microsecond), so a stamp is the one `datetime.now(UTC)` would have given.
"""

from __future__ import annotations

from datetime import UTC, datetime
from time import time_ns

# The last second formatted and its text up to the seconds ("2026-12-03T16:30:41"): one tuple,
# replaced whole, so a thread reading it never sees a second with another second's text.
_last: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _second(second: int) -> str:
    """The date and time of a second since the epoch, as `isoformat` writes them."""
    global _last
    last_second, text = _last
    if last_second != second:
        text = datetime.fromtimestamp(second, UTC).isoformat()[:-6]  # without "+00:00"
        _last = (second, text)
    return text


def iso_us(ns: int) -> str:
    """An instant (ns since the epoch) as structlog's TimeStamper(fmt="iso", utc=True) writes it:
    `datetime.isoformat()` with "Z" for "+00:00", microseconds left out when they are 0."""
    second, us = divmod(ns // 1000, 1_000_000)
    if us:
        return f"{_second(second)}.{us:06d}Z"
    return _second(second) + "Z"


def iso_ms(ns: int) -> str:
    """An instant (ns since the epoch) as `isoformat(timespec="milliseconds")` with "Z" for
    "+00:00": the milliseconds always written, truncated as isoformat truncates them."""
    second, us = divmod(ns // 1000, 1_000_000)
    return f"{_second(second)}.{us // 1000:03d}Z"


def log_stamp() -> str:
    """Now, for a log line: 2026-12-03T16:30:41.123456Z (2026-12-03T16:30:41Z on the second)."""
    return iso_us(time_ns())


def now_iso() -> str:
    """Now, for a result's finished_at or a manifest: 2026-12-03T16:30:41.123Z."""
    return iso_ms(time_ns())
