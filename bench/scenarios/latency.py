"""4. Latency hiding: the simulator adds 250 ms ± 50 ms to every answer; `--rate 200`. With
`--concurrency auto` (the default) the job should take N/rate, as if there were no latency:
Little's law wants 200 × 0.25 = 50 requests in flight. The old fixed default of 16 is shown
for contrast (16 / 0.25 s = 64/s at best). The job's time is the summary's `elapsed_s` (first
row read to last row recorded); the process's wall time, start-up included, is beside it."""

from __future__ import annotations

from ..common import OUT, Target, measure, simulator_ids, snaprelabel, summary_event, write_jobs
from ..report import Section, table

RATE = 200


def run(quick: bool) -> Section:
    n = RATE * (15 if quick else 30)
    ideal = n / RATE
    rows, verdict = [], None
    with Target("simulator", "--snapshots", str(n), "--latency", "0.25",
                "--latency-jitter", "0.05") as target:
        jobs = write_jobs(OUT / "latency-jobs.csv", simulator_ids(n))
        for concurrency in ("auto", "16"):
            log = OUT / f"latency-{concurrency}.log"
            done = measure(snaprelabel(jobs, target.url, "--rate", str(RATE), "--concurrency",
                                       concurrency), stdout_path=log)
            assert done.rc == 0, done.stderr
            summary = summary_event(log)
            elapsed = summary["elapsed_s"]
            over = elapsed / ideal - 1
            if concurrency == "auto":
                verdict = (over <= 0.05, f"{elapsed:.2f} s for N/rate = {ideal:.1f} s "
                                         f"({over:+.1%}; target within 5%)")
            rows.append([concurrency, summary.get("concurrency", "–"), f"{n:,}", f"{elapsed:.2f}",
                         f"{over:+.1%}", f"{done.wall_s:.2f}", f"{done.load:.2f}"])
    return Section(
        "4. Latency hiding",
        __doc__.strip(),
        table(["--concurrency", "senders (most at once)", "rows", "job s", "vs N/rate",
               "process wall s", "load"], rows),
        verdict=verdict,
    )
