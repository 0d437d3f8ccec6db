"""Profiles: py-spy (from bench/.venv) samples snaprelabel sending 50,000 jobs (10,000 with
--quick) to the static target, no rate limit, as a lean install, with [fast], and (with
--before) the code before this work. Shares of samples by where the time went; the raw
profiles are in bench/out/profile-*.txt. Below them, each piece of the hot path timed alone
(bench/micro.py, best of 5, µs per job)."""

from __future__ import annotations

import json
from pathlib import Path

from .. import common
from ..common import BENCH, OUT, PEER_VENV, PY, Target, measure, snaprelabel, synthetic_ids, write_jobs
from ..profile_summary import summarise
from ..report import Section, table

# Where the time goes, by the function a sample's stack passes through (first match wins).
BUCKETS = (
    ("start-up (imports)", ("_find_and_load",)),
    ("reader thread (CSV, validation)", ("next_batch", "Thread.run")),
    ("job log events (structlog)", ("Engine._log",)),
    ("report rows", ("write_batch",)),
    ("HTTP exchange (aiohttp)", ("SnapshotApi._exchange",)),
    ("request body, results, retries (relabel)", ("Relabeler.apply",)),
    ("engine (queues, tasks, writer)", ("Engine.",)),
)


def _buckets(path: Path) -> dict[str, float]:
    shares: dict[str, float] = {name: 0.0 for name, _ in BUCKETS}
    shares["event loop and the rest"] = 0.0
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        for name, marks in BUCKETS:
            if any(mark in stack for mark in marks):
                shares[name] += int(count)
                break
        else:
            shares["event loop and the rest"] += int(count)
    return {k: v / total for k, v in shares.items()}


def run(quick: bool) -> Section:
    n = 10_000 if quick else 50_000
    jobs = write_jobs(OUT / f"jobs-{n}.csv", synthetic_ids(n))
    spy = str(PEER_VENV / "bin" / "py-spy")
    variants = {"lean install": ({"PYTHONPATH": str(BENCH / "shadow")}, None),
                "[fast]": ({}, None)}
    if common.BEFORE:
        variants = {"before this work (lean)": ({"PYTHONPATH": str(BENCH / "shadow")},
                                                common.BEFORE), **variants}
    results = {}
    with Target("static") as target:
        for name, (env, cwd) in variants.items():
            out = OUT / f"profile-{name.split()[0].strip('[]')}.txt"
            flags = ("--concurrency", "64") if cwd else ()
            done = measure([spy, "record", "-r", "200", "-f", "raw", "-o", str(out), "--",
                            *snaprelabel(jobs, target.url, "--rate", "0", *flags)],
                           env=env, cwd=cwd, stdout_path=OUT / "profile.log")
            assert done.rc == 0, done.stderr
            results[name] = (_buckets(out), summarise(out, 12), done)
    names = list(results)
    rows = [[bucket, *(f"{results[v][0][bucket]:.1%}" for v in names)]
            for bucket in results[names[0]][0]]
    rows.append(["CPU s per 1,000 jobs (under py-spy)",
                 *(f"{results[v][2].cpu_s / n * 1000:.3f}" for v in names)])
    body = table(["where the samples are", *names], rows)
    micro = {}
    for name, env in (("lean install", {"PYTHONPATH": str(BENCH / "shadow")}), ("[fast]", {})):
        done = measure([PY, "-m", "bench.micro", "--json"], env=env)
        assert done.rc == 0, done.stderr
        micro[name] = json.loads(done.stdout)
    body += "\n\n" + table(["piece of the hot path", "lean µs", "[fast] µs"],
                           [[k, f"{v:.2f}", f"{micro['[fast]'][k]:.2f}"]
                            for k, v in micro["lean install"].items()])
    return Section("Profiles", __doc__.strip(), body)
