"""The simulated-time table of docs/design.md#adaptive-rate: `--rate auto` driven by a fake clock (as
in tests/test_quota_shapes.py) against the quota models of tests/quota_models.py, answers at once.
Deterministic: the same code prints the same table. Run as `python -m bench.simulated_quotas`.

A fixed window's figures depend on where the job starts in it (the ramp's count holds part of the
window before, and with Retry-After each extra 429 is a second's pause): those rows are the mean
over ten starts a tenth of a second apart, and the worst of them."""

from __future__ import annotations

import asyncio
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from quota_models import FixedWholeSecondRetryAfter, FixedWindow, PerSecond
from test_quota_shapes import FakeClock, auto, run

PER_SECOND = (10, 100, 1000)
STARTS = [i / 10 for i in range(10)]  # where the job starts in a fixed window's second


async def _one(make: Callable[[float], object], per_second: float, seconds: float) -> tuple[float, float]:
    clock = FakeClock()
    done = await run(auto(clock), clock, make(clock.now), seconds)
    return done.accepted / (per_second * seconds), done.throttled


async def _cells(make: Callable[[int, float], object], seconds: float, fixed: bool) -> tuple[str, str]:
    held, throttled = [], []
    for q in PER_SECOND:
        if not fixed:
            h, t = await _one(lambda now, q=q: make(q, now), q, seconds)
            held.append(f"{h:.1%}")
            throttled.append(f"{t:.2%}")
            continue
        runs = [await _one(lambda now, q=q, s=s: make(q, now + s), q, seconds) for s in STARTS]
        hs, ts = [h for h, _ in runs], [t for _, t in runs]
        held.append(f"{statistics.mean(hs):.1%} ({min(hs):.1%})")
        throttled.append(f"{statistics.mean(ts):.2%} ({max(ts):.2%})")
    return ", ".join(held), ", ".join(throttled)


async def table() -> list[tuple[str, str, str]]:
    rows = []
    shapes: list[tuple[str, Callable[[int, float], object], float, bool]] = [
        ("10/s, 100/s, 1,000/s, sliding window, 120 s", lambda q, _: PerSecond(q), 120, False),
        ("the same, fixed one-second windows, 120 s", lambda q, at: FixedWindow(q, 1.0, at), 120, True),
        ("the same, sliding, 10 s", lambda q, _: PerSecond(q), 10, False),
        ("the same, fixed windows, 10 s", lambda q, at: FixedWindow(q, 1.0, at), 10, True),
        ("with `Retry-After: 1`, sliding, 120 s", lambda q, _: PerSecond(q, 1.0), 120, False),
        ("with `Retry-After: 1`, fixed, 120 s", lambda q, at: FixedWholeSecondRetryAfter(q, 1.0, at), 120, True),
        ("with `Retry-After: 1`, sliding, 10 s", lambda q, _: PerSecond(q, 1.0), 10, False),
        ("with `Retry-After: 1`, fixed, 10 s", lambda q, at: FixedWholeSecondRetryAfter(q, 1.0, at), 10, True),
    ]
    for label, make, seconds, fixed in shapes:
        rows.append((label, *await _cells(make, seconds, fixed)))
    common = ((240, 20.0, 7.3), (600, 60.0, 13.1), (3000, 60.0, 41.0))
    rows.append(await _windows("240/20 s, 600/60 s, 3,000/60 s, not stated", common, False))
    rows.append(await _windows("240/20 s, 600/60 s, 3,000/60 s, stated", common, True))
    # A tiny quota (each 429 a tenth of a window's requests) and a long window (each 2 s of
    # trickle 0.06% of a window's requests): what trying a closed window costs at either end.
    rows.append(await _windows("10/60 s, 3,600/3,600 s, not stated", ((10, 60.0, 24.6), (3600, 3600.0, 1476.0)), False))
    return rows


async def _windows(label: str, shapes: tuple[tuple[int, float, float], ...], stated: bool) -> tuple[str, str, str]:
    results = [await _one(lambda now, n=n, w=w, o=o: FixedWindow(n, w, now + o, state=stated), n / w, 4 * w)
               for n, w, o in shapes]
    return (f"{label} (4 windows)", ", ".join(f"{h:.1%}" for h, _ in results),
            ", ".join(f"{t:.2%}" for _, t in results))


def main() -> None:
    print("| quota (whole jobs, ramp included) | held | throttled |\n|---|---|---|")
    for row in asyncio.run(table()):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
