"""The limiter's own CPU at 2,000/s with many waiters: W tasks each taking slots in a loop for
D seconds, no HTTP, in a child process pinned to one core. CPU seconds per second of wall time
(1.0 = a whole core) and the grants per second achieved."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from ..common import PY, measure, median
from ..report import Section, table

RATE = 2000


async def _drive(kind: str, waiters: int, seconds: float) -> dict:
    from asyncio_throttle import Throttler

    from worker.rate import AdaptiveRateLimiter, RateLimiter

    limiter = {
        "asyncio-throttle alone": lambda: Throttler(rate_limit=RATE, period=1.0),
        "RateLimiter (snaprelabel --rate 2000)": lambda: RateLimiter(RATE),
        "AdaptiveRateLimiter held at 2,000/s": lambda: AdaptiveRateLimiter(start=RATE),
    }[kind]()
    grants = 0
    end = time.monotonic() + seconds

    async def waiter() -> None:
        nonlocal grants
        while time.monotonic() < end:
            await limiter.acquire()
            grants += 1

    cpu, wall = time.process_time(), time.monotonic()
    await asyncio.gather(*(waiter() for _ in range(waiters)))
    wall = time.monotonic() - wall
    return {"cpu_per_s": (time.process_time() - cpu) / wall, "grants_per_s": grants / wall}


KINDS = ("asyncio-throttle alone", "RateLimiter (snaprelabel --rate 2000)",
         "AdaptiveRateLimiter held at 2,000/s")


def run(quick: bool) -> Section:
    seconds, repeats = (4.0, 1) if quick else (8.0, 3)
    rows = []
    worst = 0.0
    for waiters in (64, 2000):
        for kind in KINDS:
            results = []
            for _ in range(repeats):
                done = measure([PY, "-m", "bench.scenarios.limiter_cpu", kind, str(waiters),
                                str(seconds)])
                assert done.rc == 0, done.stderr
                results.append((json.loads(done.stdout), done.load))
            cpu = median([r["cpu_per_s"] for r, _ in results])
            if kind != KINDS[0]:
                worst = max(worst, cpu)
            rows.append([kind, waiters, f"{cpu:.3f}",
                         f"{median([r['grants_per_s'] for r, _ in results]):,.0f}",
                         f"{median([load for _, load in results]):.2f}"])
    return Section(
        "3b. The limiter's CPU at 2,000/s",
        __doc__.strip() + f" Median of {repeats}, {seconds:g} s each.",
        table(["limiter", "waiters", "CPU s per s", "grants/s", "load"], rows),
        verdict=(worst < 0.25, f"snaprelabel's limiters use at most {worst:.3f} of a core at "
                               "2,000/s with 2,000 waiters (asyncio-throttle alone: see above)"),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=KINDS)
    parser.add_argument("waiters", type=int)
    parser.add_argument("seconds", type=float)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_drive(args.kind, args.waiters, args.seconds))))
    sys.exit(0)
