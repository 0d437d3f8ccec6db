"""Quotas in queue mode: three `snaprelabel consume --rate auto` replicas on one stream (the Redis
at $SNAPRELABEL_BENCH_REDIS, default 127.0.0.1:6379) against the simulator enforcing a quota
they share (issue 13, item 4). Figures as in quotas.py, over the three replicas' requests; the
reference row is the same three replicas with `--shared-rate` set at the true quota."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

from ..common import OUT, PROJECT, PY, Target, loadavg, simulator_ids, write_jobs
from ..report import Section, table
from .quotas import Run, Shape, _arrivals, _control, _verdict, figures

REDIS = os.environ.get("SNAPRELABEL_BENCH_REDIS", "redis://127.0.0.1:6379/0")
REPLICAS = 3


def shapes(quick: bool) -> list[Shape]:
    s = 8.0 if quick else 12.0
    return [
        Shape("100/s", "100/s", 100, s, stated=False),
        Shape("100/s, Retry-After", "100/s", 100, s, retry_after=True, stated=False),
        Shape("100/s, limit stated", "100/s", 100, s),
        Shape("300/s", "300/s", 300, s, stated=False),
        Shape("240/20s", "240/20s", 12, 60, stated=False),
        Shape("240/20s, limit stated", "240/20s", 12, 60, stated=True),
    ]


def run_one(shape: Shape, mode: str) -> Run:
    slug = f"quotas-queue-{shape.quota.replace('/', 'per')}-{mode}-{'ra' if shape.retry_after else 'nora'}" \
           f"-{'stated' if shape.stated else 'bare'}"
    stream = f"bench:{uuid.uuid4().hex[:8]}:jobs"
    flags = ["--quota", shape.quota, "--quota-retry-after", "on" if shape.retry_after else "off",
             "--quota-limit-stated", "on" if shape.stated else "off"]
    with Target("simulator", "--snapshots", str(shape.rows), *flags, record=True) as target:
        jobs = write_jobs(OUT / f"{slug}.csv", simulator_ids(shape.rows))
        subprocess.run([PY, "-m", "worker", "enqueue", str(jobs), "--redis", REDIS, "--stream", stream,
                        "--project-id", PROJECT, "--report", str(OUT / f"{slug}.rejects.csv"),
                        "--overwrite"], check=True, capture_output=True)
        _control(target.url, "/_sim/quota", {"quota": shape.quota, "retry_after": shape.retry_after,
                                             "limit_stated": shape.stated, "changes": []})
        rate = ["--rate", "auto"] if mode == "auto" else ["--rate", "0", "--shared-rate", f"{shape.per_second:g}"]
        started = time.monotonic()
        procs = []
        for i in range(REPLICAS):
            with open(OUT / f"{slug}-r{i}.log", "w") as out:
                procs.append(subprocess.Popen(
                    [PY, "-m", "worker", "consume", "--redis", REDIS, "--stream", stream,
                     "--endpoint", target.url, "--no-auth", "--project-id", PROJECT, "--consumer", f"r{i}",
                     "--until-empty", "--log-format", "json", *rate], stdout=out, stderr=subprocess.STDOUT))
        cap = 3 * shape.seconds + 30
        stopped = False
        for proc in procs:
            try:
                proc.wait(max(1.0, started + cap - time.monotonic()))
            except subprocess.TimeoutExpired:
                stopped = True
                proc.terminate()
                proc.wait(20)
        wall = time.monotonic() - started
        stats = _control(target.url, "/_sim/stats")
        arrivals = _arrivals(target.url, slug)
    rc = max(abs(p.returncode or 0) for p in procs)
    return Run(shape, mode, rc, wall, float("nan"), stopped, loadavg(), stats, arrivals)


def run(quick: bool) -> Section:
    rows, runs = [], []
    for shape in shapes(quick):
        for mode in ("auto", "fixed"):
            runs.append(run := run_one(shape, mode))
            f = figures(run)
            rows.append([shape.name, mode, f"{f.applied:,}/{shape.rows:,}", f"{f.held:.1%}",
                         f"{f.per_window:.1%} ({f.windows})" if f.per_window is not None else "–",
                         f"{f.throttled:.2%}", f"{f.span:.1f}", "yes" if run.stopped else "",
                         f"{run.load:.2f}"])
    body = table(["quota", "--rate", "rows applied", "held", "held per whole window (windows)", "throttled",
                  "s", "stopped", "load"], rows)
    failed = [f"{r.shape.name} {r.mode}: exit {r.rc}" for r in runs if r.rc != 0 and not r.stopped]
    if failed:
        body += "\n\nExit codes other than 0: " + "; ".join(failed) + "."
    return Section(f"quotas, {REPLICAS} queue replicas", __doc__.strip(), body, verdict=_verdict(runs))
