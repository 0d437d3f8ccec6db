"""5. Adaptive rate: `--rate auto` against the simulator enforcing a hidden limit (a one-second
sliding window; 429 above it, no Retry-After). Every arrival is recorded on the simulator's
clock. Sustained = requests accepted per second over the steady part ÷ the limit: from 10 s
after the start until two seconds' worth of rows are left (the tail is retries of throttled
rows, waiting out their 2-4 s backoff, not the limiter's doing); whole run = accepted ÷ (limit × duration), slow start
included; throttled = 429s ÷ all requests. Then one job while the limit changes mid-run
(`POST /_sim/rate-limit`): 100/s, then 50/s, then 200/s; each phase is judged like a steady
limit from 10 s after its change (a quadrupled limit takes about 8 s to find: the probe's step
doubles each second), and the 429s of the change itself are counted apart. When a quota halves,
the server's window still holds the last second's requests: it refuses every request until that
drains, about half a second. Only a client that stopped for that long on a 429 would avoid them,
and one 429 does not tell a fallen quota from a probe just past a steady one."""

from __future__ import annotations

import threading

from ..common import OUT, Target, measure, simulator_ids, snaprelabel, summary_event, write_jobs
from ..report import Section, table

WARMUP = 10.0


def _accepted_rate(arrivals: list[tuple[float, int | None]], start: float, end: float) -> float:
    ok = sum(1 for t, status in arrivals if start <= t < end and status == 200)
    return ok / (end - start) if end > start else float("nan")


def _steady_end(arrivals: list[tuple[float, int | None]], limit: int) -> float:
    """When two seconds' worth of accepted rows were still to come."""
    accepted = [t for t, status in arrivals if status == 200]
    return accepted[max(0, len(accepted) - 2 * limit - 1)]


def _throttled(arrivals: list[tuple[float, int | None]], start: float, end: float) -> float:
    window = [status for t, status in arrivals if start <= t < end]
    return sum(1 for s in window if s == 429) / len(window) if window else float("nan")


def run(quick: bool) -> Section:
    seconds = 25 if quick else 40
    rows, met = [], True
    for limit in (10, 100, 1000):
        n = limit * seconds
        with Target("simulator", "--snapshots", str(n), "--rate-limit", str(limit),
                    record=True) as target:
            jobs = write_jobs(OUT / f"adaptive-{limit}.csv", simulator_ids(n))
            log = OUT / f"adaptive-{limit}.log"
            done = measure(snaprelabel(jobs, target.url, "--rate", "auto"), stdout_path=log)
            assert done.rc == 0, done.stderr
            arrivals = target.arrivals()
        first, last = arrivals[0][0], arrivals[-1][0]
        sustained = _accepted_rate(arrivals, first + WARMUP, _steady_end(arrivals, limit)) / limit
        whole = _accepted_rate(arrivals, first, last) / limit
        throttled = _throttled(arrivals, first, last + 1)
        met = met and sustained >= 0.9 and throttled <= 0.02
        rows.append([f"{limit:,}/s", f"{n:,}", f"{sustained:.1%}", f"{whole:.1%}",
                     f"{throttled:.2%}", f"{last - first:.1f}",
                     summary_event(log).get("concurrency", "–"), f"{done.load:.2f}"])
    body = table(["hidden limit", "rows", "sustained", "whole run", "throttled", "s",
                  "senders", "load"], rows)
    changing, changing_met = _changing(quick)
    return Section(
        "5. Adaptive rate",
        __doc__.strip(),
        body + "\n\nThe limit changes mid-run:\n\n" + changing,
        verdict=(met and changing_met,
                 "sustained ≥ 90% of the hidden limit and ≤ 2% throttled at 10, 100 and 1,000/s; "
                 "each phase of the changing limit judged alike"),
    )


def _changing(quick: bool) -> tuple[str, bool]:
    phase = 15.0 if quick else 25.0
    plan = [(100, 0.0), (50, phase), (200, 2 * phase)]
    n = int(sum(limit * phase for limit, _ in plan))
    with Target("simulator", "--snapshots", str(n), "--rate-limit", "100",
                record=True) as target:
        jobs = write_jobs(OUT / "adaptive-changing.csv", simulator_ids(n))
        timers = [threading.Timer(at, target.control, ("/_sim/rate-limit", {"rate": limit}))
                  for limit, at in plan[1:]]
        for timer in timers:
            timer.start()
        done = measure(snaprelabel(jobs, target.url, "--rate", "auto"),
                       stdout_path=OUT / "adaptive-changing.log")
        for timer in timers:
            timer.cancel()
        assert done.rc == 0, done.stderr
        arrivals = target.arrivals()
    first, last = arrivals[0][0], arrivals[-1][0]
    rows, met = [], True
    for i, (limit, at) in enumerate(plan):
        start = first + at + WARMUP
        end = (min(first + plan[i + 1][1], last) if i + 1 < len(plan)
               else _steady_end(arrivals, limit))
        sustained = _accepted_rate(arrivals, start, end) / limit
        throttled = _throttled(arrivals, start, end)
        change = sum(1 for t, status in arrivals if first + at <= t < start and status == 429)
        met = met and sustained >= 0.9 and throttled <= 0.02
        rows.append([f"{limit}/s", f"{at:.0f}-{(end - first):.0f} s", f"{sustained:.1%}",
                     f"{throttled:.2%}", f"{change:,}"])
    return table(["limit", "phase (s from start)", "sustained", "throttled",
                  "429s in the first 10 s of the phase"], rows), met
