"""7. Start-up: time from process start (just before the fork) to the first request arriving at
the target, on the target's wall clock. The target is the recording simulator; the job has
100 rows, so reading the input is not what is measured."""

from __future__ import annotations

import time
from pathlib import Path

from .. import common
from ..common import OUT, PY, Target, loadavg, measure, median, simulator_ids, snaprelabel, write_jobs
from ..report import Section, table

TARGET_S = 0.5


def _first_requests(target: Target, jobs: Path, repeats: int, cwd: Path | None
                    ) -> tuple[list[float], list[float]]:
    firsts, loads = [], []
    for _ in range(repeats):
        target.control("/_sim/reset-records", {})
        started = time.time()
        done = measure(snaprelabel(jobs, target.url, "--rate", "0"),
                       stdout_path=OUT / "startup.log", cwd=cwd)
        assert done.rc == 0, done.stderr
        arrivals = target.control("/_sim/requests?since=0")["requests"]
        firsts.append(min(r["t_wall"] for r in arrivals) - started)
        loads.append(done.load)
    return firsts, loads


def run(quick: bool) -> Section:
    repeats = 5 if quick else 11
    with Target("simulator", "--snapshots", "100", record=True) as target:
        jobs = write_jobs(OUT / "startup-jobs.csv", simulator_ids(100))
        firsts, loads = _first_requests(target, jobs, repeats, None)
        before = _first_requests(target, jobs, repeats, common.BEFORE) if common.BEFORE else None
    # The same for an interpreter that does nothing, to show the floor.
    bare = []
    for _ in range(repeats):
        started = time.monotonic()
        measure([PY, "-c", "pass"])
        bare.append(time.monotonic() - started)
    first = median(firsts)
    return Section(
        "7. Start-up",
        f"Process start to the first request arriving at the target (median of {repeats}; "
        f"`{PY} -m worker run`, 100 rows, `--rate 0`).",
        table(["measure", "median s", "min s", "max s", "load"], [
            ["snaprelabel: start → first request", f"{first:.3f}", f"{min(firsts):.3f}",
             f"{max(firsts):.3f}", f"{median(loads):.2f}"],
            *([["before this work", f"{median(before[0]):.3f}", f"{min(before[0]):.3f}",
                f"{max(before[0]):.3f}", f"{median(before[1]):.2f}"]] if before else []),
            ["python -c pass (the floor)", f"{median(bare):.3f}", f"{min(bare):.3f}",
             f"{max(bare):.3f}", f"{loadavg():.2f}"],
        ]),
        verdict=(first <= TARGET_S, f"{first:.3f} s (target ≤ {TARGET_S} s)"),
        figures={"first_request_s": first, "python_floor_s": median(bare)},
    )
