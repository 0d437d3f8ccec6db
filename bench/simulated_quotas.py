"""The simulated-time table of docs/design.md#adaptive-rate: `--rate auto` driven by a fake clock (as
in tests/test_quota_shapes.py) against the quota models of tests/quota_models.py, answers at once.
Deterministic: the same code prints the same table. Run as `python -m bench.simulated_quotas`."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from quota_models import FixedWholeSecondRetryAfter, FixedWindow, PerSecond
from test_quota_shapes import FakeClock, auto, run

PER_SECOND = (10, 100, 1000)
OFFSET = 0.37  # a fixed window's second begins this long after the job starts


async def _one(model: object, per_second: float, seconds: float) -> tuple[float, float]:
    clock = FakeClock()
    done = await run(auto(clock), clock, model, seconds)
    return done.accepted / (per_second * seconds), done.throttled


def _cells(results: list[tuple[float, float]]) -> tuple[str, str]:
    return (", ".join(f"{held:.1%}" for held, _ in results),
            ", ".join(f"{throttled:.2%}" for _, throttled in results))


async def table() -> list[tuple[str, str, str]]:
    rows = []
    shapes: list[tuple[str, Callable[[int], object], float]] = [
        ("10/s, 100/s, 1,000/s, sliding window, 120 s", lambda q: PerSecond(q), 120),
        ("the same, fixed one-second windows, 120 s", lambda q: FixedWindow(q, 1.0, OFFSET), 120),
        ("the same, sliding, 10 s", lambda q: PerSecond(q), 10),
        ("the same, fixed windows, 10 s", lambda q: FixedWindow(q, 1.0, OFFSET), 10),
        ("with `Retry-After: 1`, sliding, 120 s", lambda q: PerSecond(q, 1.0), 120),
        ("with `Retry-After: 1`, fixed, 120 s", lambda q: FixedWholeSecondRetryAfter(q, 1.0, OFFSET), 120),
        ("with `Retry-After: 1`, sliding, 10 s", lambda q: PerSecond(q, 1.0), 10),
        ("with `Retry-After: 1`, fixed, 10 s", lambda q: FixedWholeSecondRetryAfter(q, 1.0, OFFSET), 10),
    ]
    for label, make, seconds in shapes:
        rows.append((label, *_cells([await _one(make(q), q, seconds) for q in PER_SECOND])))
    for stated in (False, True):
        results = [await _one(FixedWindow(n, w, offset + FakeClock().now, state=stated), n / w, 4 * w)
                   for n, w, offset in ((240, 20.0, 7.3), (600, 60.0, 13.1), (3000, 60.0, 41.0))]
        label = f"240/20 s, 600/60 s, 3,000/60 s, {'stated' if stated else 'not stated'} (4 windows)"
        rows.append((label, *_cells(results)))
    return rows


def main() -> None:
    print("| quota (whole jobs, ramp included) | held | throttled |\n|---|---|---|")
    for row in asyncio.run(table()):
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
