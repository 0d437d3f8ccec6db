"""Safety rails end to end against the simulator: the failure threshold, a run of 401/403, the
canary and --limit, counted on the server's side."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from helpers import FAST, PROJECT, TOKEN, read_report, relabel_targets, run_cli, write_jobs
from worker.runner import JobSpec, run_job
from worker.settings import load_settings
from worker.simulator import Fault
from worker.sources import InputSpec

CONCURRENCY = 8


def settings_for(sim, **overrides):
    values = {"endpoint": sim.url, "project_id": PROJECT, "token": TOKEN, "rate": 0,
              "concurrency": CONCURRENCY, **FAST, **overrides}
    return load_settings(values)


async def run(sim, tmp_path, targets, extra_rows=(), **overrides):
    jobs = write_jobs(tmp_path / "jobs.csv", targets, list(extra_rows))
    report = tmp_path / "report.csv"
    result = await run_job(settings_for(sim, **overrides),
                           JobSpec(InputSpec(str(jobs)), str(report), overwrite=True),
                           on_terminal=False)
    return result, read_report(report)


def put_ids(sim) -> list[str]:
    return [r.snapshot_id for r in sim.requests if r.method == "PUT"]


def outcomes(rows) -> Counter[str]:
    return Counter(r["outcome"] for r in rows)


def refuse_every_put(sim, targets, status="403"):
    """Every PUT refused; the listing still answers, so the check before the job passes (as
    when a role may list snapshots but not change them)."""
    sim.set_always_fail({sid: status for sid in targets})


async def test_every_put_refused_stops_after_min_tasks_and_records_the_rest(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 300)
    refuse_every_put(sim, targets)
    result, rows = await run(sim, tmp_path, targets, min_tasks=40,
                             max_consecutive_auth_failures=0)

    assert result.exit_code == 3
    assert result.summary.stopped == "failure_rate"
    sent = put_ids(sim)
    # The 40th final row trips it; at most one writer batch and the requests in flight follow.
    assert 40 <= len(sent) <= 40 + 2 * CONCURRENCY
    assert len(set(sent)) == len(sent)  # a 403 is final: one request per row
    assert len(rows) == 300
    assert sorted(int(r["line"]) for r in rows) == list(range(2, 302))
    counts = outcomes(rows)
    assert counts == {"failed": len(sent), "not_attempted": 300 - len(sent)}
    assert {r["snapshot_id"] for r in rows if r["outcome"] == "failed"} == set(sent)
    stopped = next(r for r in rows if r["outcome"] == "not_attempted")
    assert "more than --max-failure-rate 0.5" in stopped["error_message"]
    assert stopped["attempts"] == "0" and stopped["http_status"] == ""


async def test_a_run_of_403_stops_at_once_before_min_tasks(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 300)
    refuse_every_put(sim, targets)
    result, rows = await run(sim, tmp_path, targets)  # defaults: 10 in a row, min-tasks 100

    assert result.exit_code == 3 and result.summary.stopped == "auth_failures"
    assert 10 <= len(put_ids(sim)) <= 10 + 2 * CONCURRENCY
    counts = outcomes(rows)
    assert counts["failed"] == len(put_ids(sim)) and sum(counts.values()) == 300
    stopped = next(r for r in rows if r["outcome"] == "not_attempted")
    assert "refused with 401/403" in stopped["error_message"]


def test_puts_refused_with_401_stop_the_cli_with_exit_3_and_say_why(sim_thread, tmp_path):
    sim = sim_thread(snapshots=200)
    targets = relabel_targets(sim.sim.snapshots, 200)
    sim.call(refuse_every_put, sim.sim, targets, "401")
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    done = run_cli("run", str(jobs), "--endpoint", sim.url, "--project-id", PROJECT,
                   "--rate", "0", "--concurrency", "4", "--report", str(tmp_path / "r.csv"),
                   "--max-consecutive-auth-failures", "5", env={"SNAPRELABEL_TOKEN": TOKEN})
    assert done.returncode == 3, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    stop = next(e for e in events if e["event"] == "safety_stop")
    assert stop["reason"] == "auth_failures" and "HTTP 401" in stop["why"]
    assert events[-1]["event"] == "summary" and events[-1]["stopped"] == "auth_failures"
    assert 5 <= len(put_ids(sim.sim)) <= 5 + 2 * 4
    assert TOKEN not in done.stdout + done.stderr


@pytest.mark.parametrize("sim", [{"faults": [Fault("503", 0.6)]}], indirect=True)
async def test_a_row_counts_once_when_final_so_retried_rows_do_not_trip_it(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 60)
    result, rows = await run(sim, tmp_path, targets, min_tasks=10, max_attempts=30,
                             job_deadline=60)
    assert sum(1 for r in sim.requests if r.status == 503) > 60  # most attempts failed...
    assert result.exit_code == 0  # ...but every row ended applied
    assert outcomes(rows) == {"applied": 60}


async def test_failures_below_the_rate_and_rejected_rows_do_not_stop_the_job(sim, tmp_path):
    ids = sorted(sim.snapshots)[:150]
    sim.set_always_fail({sid: "404" for sid in ids[::3]})  # a third fail: below 0.5
    bad = [["not-a-uuid", f"x{i}"] for i in range(200)]  # rejected: never sent, never counted
    result, rows = await run(sim, tmp_path, {sid: f"n-{i}" for i, sid in enumerate(ids)}, bad,
                             min_tasks=10)
    assert result.exit_code == 1 and result.summary.stopped is None
    assert outcomes(rows) == {"applied": 100, "failed": 50, "rejected": 200}


async def test_a_failing_canary_sends_at_most_n_requests(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 100)
    refuse_every_put(sim, targets)
    result, rows = await run(sim, tmp_path, targets, canary=5, concurrency=16)

    assert result.exit_code == 3 and result.summary.stopped == "canary"
    sent = put_ids(sim)
    assert 1 <= len(sent) <= 5
    assert set(sent) <= set(list(targets)[:5])
    counts = outcomes(rows)
    assert counts == {"failed": len(sent), "not_attempted": 100 - len(sent)}
    stopped = next(r for r in rows if r["outcome"] == "not_attempted")
    assert "canary row at line" in stopped["error_message"]


@pytest.mark.parametrize("sim", [{"hang_seconds": 0.5}], indirect=True)
async def test_a_passing_canary_is_sent_alone_then_the_rest_follows(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 40)
    slow = list(targets)[2]
    sim.set_always_fail({slow: "hang"})  # a canary row answered (200) after 0.5 s
    result, rows = await run(sim, tmp_path, targets, canary=5, concurrency=16)

    assert result.exit_code == 0
    assert outcomes(rows) == {"applied": 40}
    puts = [r for r in sim.requests if r.method == "PUT"]
    assert {r.snapshot_id for r in puts[:5]} == set(list(targets)[:5])
    hung = next(r for r in puts if r.snapshot_id == slow)
    # Nothing beyond the canary was sent while one of its rows was still unanswered.
    assert puts[5].t_mono >= hung.t_mono + 0.5


@pytest.mark.parametrize("sim", [{"faults": [Fault("503", 0.4)]}], indirect=True)
async def test_limit_applies_exactly_n_rows_retries_included_and_records_the_rest(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 30)
    result, rows = await run(sim, tmp_path, targets, limit=7, max_attempts=30, job_deadline=60)

    assert result.exit_code == 0 and result.summary.stopped == "limit"
    assert set(put_ids(sim)) == set(list(targets)[:7])
    assert outcomes(rows) == {"applied": 7, "not_attempted": 23}
    for sid in list(targets)[:7]:
        assert sim.snapshots[sid]["name"] == targets[sid]
    stopped = next(r for r in rows if r["outcome"] == "not_attempted")
    assert "--limit 7 was reached" in stopped["error_message"]


def test_a_threshold_stop_then_resume_completes_the_rest(sim_thread, tmp_path):
    """Needs issue 4's `run --resume`; skipped until it is merged."""
    if "--resume" not in run_cli("run", "--help").stdout:
        pytest.skip("PENDING issue 4: `run --resume` is not merged yet")
    sim = sim_thread(snapshots=200)
    targets = relabel_targets(sim.sim.snapshots, 200)
    sim.call(refuse_every_put, sim.sim, targets)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    report = tmp_path / "r.csv"
    args = ("run", str(jobs), "--endpoint", sim.url, "--project-id", PROJECT, "--rate", "0",
            "--concurrency", "4", "--report", str(report), "--min-tasks", "20",
            "--max-consecutive-auth-failures", "0")
    env = {"SNAPRELABEL_TOKEN": TOKEN}
    assert run_cli(*args, env=env).returncode == 3
    stopped = {r["line"]: r["outcome"] for r in read_report(report)}
    assert Counter(stopped.values())["not_attempted"] >= 200 - 20 - 2 * 4

    sim.call(sim.sim.set_always_fail, {})  # the permission is fixed
    resumed = run_cli(*args, "--resume", env=env)
    assert resumed.returncode in (0, 1), resumed.stderr  # 1: the rows that failed stay failed
    final: dict[str, str] = {}
    for row in read_report(report):
        if row["outcome"] in ("applied", "failed"):
            assert row["line"] not in final  # exactly one final row per input row
            final[row["line"]] = row["outcome"]
    assert sorted(final) == sorted(stopped)
    for line, outcome in stopped.items():
        assert final[line] == ("failed" if outcome == "failed" else "applied")
    applied = {r["snapshot_id"] for r in read_report(report) if r["outcome"] == "applied"}
    assert all(sim.sim.snapshots[sid]["name"] == targets[sid] for sid in applied)
