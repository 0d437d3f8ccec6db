"""Hand-made time stamps (worker/stamps.py): byte for byte what the standard library writes, at
any instant, whatever order the instants come in (a clock may step back)."""

import random
from datetime import UTC, datetime, timedelta

import pytest

from worker import stamps

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NS = 1_000_000_000


def stdlib_us(ns):
    """What structlog's TimeStamper(fmt="iso", utc=True) wrote for this instant."""
    return (EPOCH + timedelta(microseconds=ns // 1000)).isoformat().replace("+00:00", "Z")


def stdlib_ms(ns):
    """What results.now_iso wrote for this instant before worker/stamps.py."""
    return (EPOCH + timedelta(microseconds=ns // 1000)).isoformat(
        timespec="milliseconds").replace("+00:00", "Z")


def boundary(*args):
    return int((datetime(*args, tzinfo=UTC) - EPOCH) / timedelta(microseconds=1)) * 1000


# A second, a day, a month, a leap day and a year turning; the epoch; a far year.
BOUNDARIES = [boundary(2026, 12, 3, 16, 30, 41), boundary(2026, 12, 4), boundary(2027, 1, 1),
              boundary(2028, 2, 29), boundary(2028, 3, 1), boundary(2100, 3, 1), 0,
              boundary(9999, 12, 31, 23, 59, 58)]


def instants():
    rng = random.Random(13)
    for at in BOUNDARIES:
        for offset in (-NS, -1_000_001, -1_000, -999, -1, 0, 1, 999, 1_000, 999_999, 1_000_000,
                       123_456_789, NS - 1_000, NS - 1, NS):
            if at + offset >= 0:
                yield at + offset
    for _ in range(20_000):
        yield rng.randrange(0, boundary(2200, 1, 1))
    for _ in range(5_000):  # whole seconds and whole milliseconds: a 0 fraction
        yield rng.randrange(0, 4 * 10**9) * NS
        yield rng.randrange(0, 4 * 10**12) * 1_000_000


def test_every_instant_is_written_as_the_standard_library_writes_it():
    seen = 0
    for ns in instants():
        assert stamps.iso_us(ns) == stdlib_us(ns), ns
        assert stamps.iso_ms(ns) == stdlib_ms(ns), ns
        seen += 1
    assert seen > 30_000


def test_microsecond_zero_is_left_out_of_log_stamps_and_kept_in_milliseconds():
    ns = boundary(2026, 12, 3, 16, 30, 41)
    assert stamps.iso_us(ns) == "2026-12-03T16:30:41Z"
    assert stamps.iso_us(ns + 1_000) == "2026-12-03T16:30:41.000001Z"
    assert stamps.iso_us(ns + 999) == "2026-12-03T16:30:41Z"  # below a microsecond: floored
    assert stamps.iso_ms(ns) == "2026-12-03T16:30:41.000Z"
    assert stamps.iso_ms(ns + 999_999) == "2026-12-03T16:30:41.000Z"  # truncated, not rounded
    assert stamps.iso_ms(ns + NS - 1) == "2026-12-03T16:30:41.999Z"


def test_a_second_seen_again_after_another_is_written_anew():
    # The cache holds one second: going back (a clock stepped back) must not reuse the text.
    a, b = boundary(2026, 12, 31, 23, 59, 59), boundary(2027, 1, 1)
    for ns in (a + 5_000, b + 5_000, a + 6_000, a + 7_000, b, a):
        assert stamps.iso_us(ns) == stdlib_us(ns)
        assert stamps.iso_ms(ns) == stdlib_ms(ns)


@pytest.mark.parametrize("ns", [boundary(2026, 12, 3, 16, 30, 41) + 123_456_789,
                                boundary(2027, 1, 1)])
def test_the_clock_is_read_as_datetime_now_reads_it(monkeypatch, ns):
    monkeypatch.setattr(stamps, "time_ns", lambda: ns)
    assert stamps.log_stamp() == stdlib_us(ns)
    assert stamps.now_iso() == stdlib_ms(ns)


def test_now_is_between_two_readings_of_datetime_now():
    before = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    log, result = stamps.log_stamp(), stamps.now_iso()
    after = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    full = log if len(log) > 20 else log[:-1] + ".000000Z"
    assert before <= full <= after
    assert before[:23] <= result[:23] <= after[:23]
