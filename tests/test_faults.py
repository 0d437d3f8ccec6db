"""The fault matrix: a real snaprelabel process killed with SIGKILL at random points and resumed
until done, and a job through every kind of network trouble. Nothing lost, nothing applied twice
beyond the rows in flight at a kill."""

from __future__ import annotations

import asyncio
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from helpers import FAST, PROJECT, ROOT, TOKEN, read_report, relabel_targets, write_jobs
from worker.runner import JobSpec, run_job
from worker.settings import load_settings
from worker.simulator import Fault
from worker.sources import InputSpec

CONCURRENCY = 8
# Faults that never apply the change: a snapshot applied twice was sent again after a kill.
NON_APPLYING = [Fault("503", 0.03), Fault("reset", 0.02), Fault("429", 0.02), Fault("500", 0.01)]


def test_kill_9_at_random_points_and_resume_until_done(sim_thread, tmp_path):
    seed = int(os.environ.get("SNAPRELABEL_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    sim = sim_thread(snapshots=3000, faults=NON_APPLYING, latency=0.002)
    targets = relabel_targets(sim.sim.snapshots, 3000)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    report = tmp_path / "r.csv"
    args = [sys.executable, "-m", "worker", "run", str(jobs), "--resume", "--report", str(report),
            "--endpoint", sim.url, "--project-id", PROJECT, "--rate", "0",
            "--concurrency", str(CONCURRENCY), "--max-attempts", "30", "--backoff-base", "0.01",
            "--backoff-cap", "0.1", "--throttled-backoff", "0.02"]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "SNAPRELABEL_TOKEN": TOKEN}
    # Kill once while it starts, then after a random number of rows, a random moment later.
    kill_after_rows = [0] + sorted(rng.sample(range(150, 2700), 4))
    kills = 0
    for runs in range(1, 20):  # noqa: B007 - the count goes into the context below
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        if kills < len(kill_after_rows):
            if kills == 0:
                time.sleep(rng.uniform(0.05, 0.6))
            else:
                _wait_for_lines(report, kill_after_rows[kills], proc)
                time.sleep(rng.uniform(0, 0.02))
            proc.kill()
            proc.wait()
            kills += 1
            continue
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (seed, err)
        break
    context = f"seed {seed} (SNAPRELABEL_CRASH_SEED={seed} replays it), {kills} kills, {runs} runs"

    rows = read_report(report)
    assert Counter(int(r["line"]) for r in rows) == {line: 1 for line in range(2, 3002)}, context
    assert {r["outcome"] for r in rows} == {"applied"}, context
    snapshots = sim.sim.snapshots
    assert all(snapshots[sid]["name"] == name for sid, name in targets.items()), context
    applied_again = sum(n - 1 for n in sim.sim.apply_counts.values() if n > 1)
    assert applied_again <= CONCURRENCY * kills, context
    assert sum(sim.sim.fault_counts.values()) > 100, context  # the faults were there
    manifest = json.loads((tmp_path / "r.csv.manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["report_totals"] == {
        "rows": 3000, "applied": 3000}, context
    print(f"\n{context}: {applied_again} rows applied again, "
          f"{sum(sim.sim.put_counts.values())} PUTs for 3,000 rows")


def _wait_for_lines(report, rows, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if report.read_bytes().count(b"\n") > rows:
                return
        except FileNotFoundError:
            pass
        time.sleep(0.005)


@pytest.mark.parametrize("sim", [{"snapshots": 700, "hang_seconds": 1.0, "faults": [
    Fault("reset", 0.03), Fault("reset-after", 0.02), Fault("hang", 0.02), Fault("502", 0.03),
    Fault("504", 0.01), Fault("empty", 0.02), Fault("truncate", 0.02),
]}], indirect=True)
async def test_resets_timeouts_503_bursts_truncated_and_non_json_bodies_lose_nothing(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 600)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    settings = load_settings({
        "endpoint": sim.url, "project_id": PROJECT, "token": TOKEN, "rate": 0, "concurrency": 16,
        **FAST, "max_attempts": 30, "read_timeout": 0.25,
    })
    faults = list(sim.picker.faults)

    async def bursts():
        for _ in range(3):  # three bursts of 503 on every request
            await asyncio.sleep(0.25)
            sim.set_faults([Fault("503", 1.0)])
            await asyncio.sleep(0.3)
            sim.set_faults(faults)

    burst = asyncio.create_task(bursts())
    result = await run_job(settings, JobSpec(InputSpec(str(jobs)), str(tmp_path / "r.csv")),
                           on_terminal=False)
    await burst

    rows = read_report(tmp_path / "r.csv")
    assert result.exit_code == 0
    assert sorted(int(r["line"]) for r in rows) == list(range(2, 602))
    assert {r["outcome"] for r in rows} == {"applied"}
    assert all(sim.snapshots[sid]["name"] == name for sid, name in targets.items())
    happened = sim.fault_counts
    for kind in ("reset", "reset-after", "hang", "502", "504", "empty", "truncate"):
        assert happened[kind] > 0, kind
    assert happened["503"] > 20  # the bursts hit
    assert result.summary.retries >= sum(happened.values())
    assert sum(int(r["attempts"]) > 2 for r in rows) > 0



def test_a_full_disk_mid_job_is_exit_4_and_a_failed_manifest_never_a_traceback(sim_thread, tmp_path):
    # The report may grow to 20 kB only (RLIMIT_FSIZE: writes past it fail as on a full disk).
    sim = sim_thread(snapshots=1000)
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 1000))
    report = tmp_path / "report.csv"

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAPRELABEL_", "OS_"))}
    done = subprocess.run(
        [sys.executable, "-m", "worker", "run", str(jobs), "--endpoint", sim.url, "--project-id",
         PROJECT, "--rate", "0", "--report", str(report)],
        capture_output=True, text=True, env={**env, "SNAPRELABEL_TOKEN": TOKEN}, cwd=ROOT,
        preexec_fn=small_disk, timeout=120)
    assert done.returncode == 4, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "snaprelabel run: error: cannot go on" in done.stderr and "--resume" in done.stderr
    manifest = json.loads((tmp_path / "report.csv.manifest.json").read_text())
    assert (manifest["status"], manifest["exit_code"]) == ("failed", 4)
    # Space freed: --resume finishes the job, and every snapshot carries its new name.
    resumed = subprocess.run(
        [sys.executable, "-m", "worker", "run", str(jobs), "--endpoint", sim.url, "--project-id",
         PROJECT, "--rate", "0", "--report", str(report), "--resume"],
        capture_output=True, text=True, env={**env, "SNAPRELABEL_TOKEN": TOKEN}, cwd=ROOT, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    final = {r["line"]: r["outcome"] for r in read_report(report)}
    assert len(final) == 1000 and set(final.values()) == {"applied"}
