"""--resume: the report is the journal. Rows with a final answer are skipped (but still validated),
the rest run and are appended, a torn last record is cut off first, and a report that belongs to
another jobs file is refused. Signals leave a report that resume completes."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest
import structlog

from helpers import PROJECT, ROOT, TOKEN, read_report, relabel_targets, run_cli, wait_for, write_jobs
from helpers import run_jobs_file as run
from worker.logs import configure
from worker.settings import ConfigError

GHOST = "00000000-0000-4000-8000-000000000000"
ENV = {"SNAPRELABEL_TOKEN": TOKEN}


def final_lines(rows):
    """Input lines with their final row; fails if a line has two."""
    lines = Counter(int(r["line"]) for r in rows if r["outcome"] not in ("interrupted", "dry_run"))
    assert all(n == 1 for n in lines.values()), [line for line, n in lines.items() if n > 1]
    return set(lines)


def keep_records(report, count, torn=b""):
    """The report as if the job had died after `count` rows, mid-way through the next one."""
    lines = report.read_bytes().splitlines(keepends=True)
    report.write_bytes(b"".join(lines[:1 + count]) + torn)


async def test_resume_skips_answered_rows_cuts_the_torn_tail_and_runs_the_rest(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 40)
    jobs = write_jobs(tmp_path / "jobs.csv", targets, [["bad-id", "x"], [GHOST, "ghost"]])
    report = tmp_path / "r.csv"
    await run(sim, jobs, report)
    first = read_report(report)
    keep_records(report, 25, torn=b'31,' + sorted(targets)[5].encode() + b',0123456789ab')
    kept = {r["snapshot_id"] for r in first[:25]}
    sim.reset_records()

    result = await run(sim, jobs, report, resume=True)

    rows = read_report(report)
    assert len(rows) == 42 and final_lines(rows) == set(range(2, 44))
    assert rows[:25] == first[:25]  # the journal is kept as it was
    sent = {r.snapshot_id for r in sim.requests if r.method == "PUT"}
    assert sent.isdisjoint(kept)  # nothing answered is sent again
    assert sent == ({r["snapshot_id"] for r in first[25:] if r["outcome"] != "rejected"})
    assert result.summary.skipped == 25 and result.summary.rows == 17
    assert all(sim.snapshots[sid]["name"] == name for sid, name in targets.items())
    assert result.exit_code == 1  # the report holds a rejected and a failed row
    manifest = json.loads((tmp_path / "r.csv.manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["resumed"]["runs"] == 2
    assert manifest["resumed"]["skipped"] == 25
    assert manifest["report_totals"] == {"rows": 42, "applied": 40, "rejected": 1, "failed": 1}


async def test_skipped_rows_are_still_validated_so_a_later_duplicate_is_caught(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 10)
    fifth = sorted(targets)[3]  # line 5
    jobs = write_jobs(tmp_path / "jobs.csv", targets, [[fifth, "again"]])  # line 12
    report = tmp_path / "r.csv"
    await run(sim, jobs, report, concurrency=1)
    keep_records(report, 6)  # lines 2-7 answered, line 5 among them
    sim.reset_records()

    await run(sim, jobs, report, resume=True)

    rows = {int(r["line"]): r for r in read_report(report)}
    assert (rows[12]["outcome"], rows[12]["error_code"]) == ("rejected", "duplicate")
    assert sim.put_counts[fifth] == 0 and sim.snapshots[fifth]["name"] == targets[fifth]


async def test_resume_refuses_a_report_of_another_jobs_file(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 5)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    report = tmp_path / "r.csv"
    await run(sim, jobs, report)
    before = report.read_bytes()
    write_jobs(jobs, {**targets, next(iter(targets)): "changed"})  # (rows appended would resume)
    sim.reset_records()
    with pytest.raises(ConfigError, match=r"belongs to another jobs file: it was written for .*"
                                          r"jobs.csv \(sha256 [0-9a-f]{12}…, \d+ bytes\), and .*jobs.csv is sha256"):
        await run(sim, jobs, report, resume=True)
    assert report.read_bytes() == before and sim.requests == []


async def test_resume_says_what_it_skips_and_warns_when_the_rules_differ(sim, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.snapshots, 6))
    report = tmp_path / "r.csv"
    await run(sim, jobs, report)
    keep_records(report, 4)
    configure("info", "json")
    with structlog.testing.capture_logs() as logs:
        await run(sim, jobs, report, resume=True, limits_profile="huawei-current")
    events = {e["event"]: e for e in logs}
    assert events["resume"]["skipping"] == 4 and events["resume"]["applied"] == 4
    assert events["start"]["resume_skips"] == 4
    changed = events["resuming with other settings than the report's run"]
    assert changed["limits_profile"] == "seed -> huawei-current" and "endpoint" not in changed


async def test_resume_refuses_a_report_without_its_manifest_or_in_another_format(sim, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.snapshots, 3))
    report = tmp_path / "r.jsonl"
    await run(sim, jobs, report, report_format="jsonl")
    with pytest.raises(ConfigError, match="is a jsonl report: pass --report-format jsonl"):
        await run(sim, jobs, report, resume=True)
    os.remove(f"{report}.manifest.json")
    with pytest.raises(ConfigError, match="manifest .* is missing or unreadable"):
        await run(sim, jobs, report, resume=True, report_format="jsonl")


async def test_resume_of_a_jsonl_report_and_without_a_report_at_all(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 12)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    report = tmp_path / "r.jsonl"
    first = await run(sim, jobs, report, resume=True, report_format="jsonl")  # nothing to resume
    assert first.exit_code == 0 and first.summary.skipped == 0
    lines = report.read_bytes().splitlines(keepends=True)
    report.write_bytes(b"".join(lines[:7]) + lines[7][:30])
    result = await run(sim, jobs, report, resume=True, report_format="jsonl")
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    assert result.summary.skipped == 7 and len(rows) == 12
    assert sorted(r["line"] for r in rows) == list(range(2, 14))


async def test_resume_refuses_a_report_another_process_is_writing(sim, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.snapshots, 3))
    report = tmp_path / "r.csv"
    await run(sim, jobs, report)
    with open(report, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match="another snaprelabel process is writing this report"):
            await run(sim, jobs, report, resume=True)


def test_resume_and_stdin_or_overwrite_are_refused(tmp_path):
    done = run_cli("run", "-", "--resume", "--report", str(tmp_path / "r.csv"), "--endpoint",
                   "http://127.0.0.1:9", "--no-auth", stdin=b"snapshot_id,name\n")
    assert done.returncode == 2 and b"--resume needs a jobs file" in done.stderr
    done = run_cli("run", "jobs.csv", "--resume", "--overwrite", "--endpoint", "http://127.0.0.1:9",
                   "--no-auth")
    assert done.returncode == 2 and "cannot be combined with --overwrite" in done.stderr


def job_command(sim, jobs, report, *extra):
    return [sys.executable, "-m", "worker", "run", str(jobs), "--endpoint", sim.url, "--project-id",
            PROJECT, "--rate", "0", "--report", str(report), "--backoff-base", "0.01", *extra]


def start(args, stdout=subprocess.PIPE):
    return subprocess.Popen(args, cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **ENV},
                            stdout=stdout, stderr=subprocess.PIPE, text=True)


def report_rows_over(report, count):
    return report.exists() and report.read_bytes().count(b"\n") > count


def puts_sent(sim, count):
    return sim.sim.method_counts["PUT"] >= count


def logged(path, event):
    """The child's JSON log (its stdout, sent to `path`) has a whole line of `event`."""
    lines = path.read_text().split("\n")[:-1]  # the last is not whole yet
    return any(line.startswith("{") and json.loads(line).get("event") == event for line in lines)


def test_sigterm_mid_job_records_every_row_and_resume_completes_the_rest(sim_thread, tmp_path):
    sim = sim_thread(snapshots=400, latency=0.05)
    targets = relabel_targets(sim.sim.snapshots, 400)
    jobs = write_jobs(tmp_path / "jobs.csv", targets, [["bad-id", "x"], [GHOST, "ghost"]])
    report = tmp_path / "r.csv"
    proc = start(job_command(sim, jobs, report, "--concurrency", "8", "--grace", "10"))
    wait_for(lambda: report_rows_over(report, 40), what="40 rows in the report", proc=proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 143, err
    rows = read_report(report)
    assert len(rows) == 402 and {int(r["line"]) for r in rows} == set(range(2, 404))
    assert {r["outcome"] for r in rows} <= {"applied", "failed", "rejected", "interrupted"}
    interrupted = {r["snapshot_id"] for r in rows if r["outcome"] == "interrupted"}
    assert len(interrupted) > 100
    answered = sum(r["outcome"] != "interrupted" for r in rows)
    sim.sim.reset_records()

    done = subprocess.run(job_command(sim, jobs, report, "--resume"), cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **ENV})

    assert done.returncode == 1, done.stderr  # the bad row and the ghost
    rows = read_report(report)
    assert final_lines(rows) == set(range(2, 404))
    assert {r.snapshot_id for r in sim.sim.requests if r.method == "PUT"} - {GHOST} <= interrupted
    assert all(sim.sim.snapshots[sid]["name"] == name for sid, name in targets.items())
    events = [json.loads(line) for line in done.stdout.splitlines()]
    resume = next(e for e in events if e["event"] == "resume")
    assert resume["skipping"] == answered


def test_a_second_signal_cancels_requests_in_flight_and_resume_still_works(sim_thread, tmp_path):
    sim = sim_thread(snapshots=60, latency=3.0)  # every request takes 3 s
    targets = relabel_targets(sim.sim.snapshots, 60)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    report = tmp_path / "r.csv"
    log = tmp_path / "stdout.jsonl"
    with log.open("w") as stdout:
        proc = start(job_command(sim, jobs, report, "--concurrency", "4", "--grace", "60"), stdout)
    wait_for(lambda: puts_sent(sim, 4), what="4 PUTs in flight", proc=proc)
    proc.send_signal(signal.SIGTERM)
    # The second signal only once the first is handled: two sent close together can arrive as one.
    wait_for(lambda: logged(log, "stopping"), what="the child to log that it is stopping", proc=proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)  # not the 60 s grace

    assert proc.returncode == 143, err
    # It did not wait for the answers: the server has not yet applied a request it was sent.
    assert sum(sim.sim.apply_counts.values()) == 0
    rows = read_report(report)
    assert len(rows) == 60 and {r["outcome"] for r in rows} == {"interrupted"}
    in_flight = [r for r in rows if "in flight" in r["error_message"]]
    assert len(in_flight) == 4
    sim.sim.latency_low = sim.sim.latency_high = 0.0  # the simulator answers at once from now
    # The cancelled requests still land: resume sends them again, harmlessly.
    wait_for(lambda: sum(sim.sim.apply_counts.values()) >= 4, what="the 4 cancelled requests to land")
    done = subprocess.run(job_command(sim, jobs, report, "--resume"), cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **ENV})
    assert done.returncode == 0, done.stderr
    assert final_lines(read_report(report)) == set(range(2, 62))
    assert all(sim.sim.snapshots[sid]["name"] == name for sid, name in targets.items())



def test_when_the_grace_runs_out_requests_in_flight_are_cancelled_and_every_row_recorded(
        sim_thread, tmp_path):
    """The grace is for requests in flight; recording the 60,000 rows not yet read takes longer
    than the grace here, and still completes."""
    sim = sim_thread(snapshots=10, latency=3.0)
    jobs = write_jobs(tmp_path / "jobs.csv", {f"aaaaaaaa-0000-4000-8000-{i:012d}": "x"
                                              for i in range(60_000)})
    report = tmp_path / "r.csv"
    proc = start(job_command(sim, jobs, report, "--concurrency", "4", "--grace", "0.2"))
    wait_for(lambda: puts_sent(sim, 4), what="4 PUTs in flight", proc=proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)

    assert proc.returncode == 143, err
    rows = read_report(report)
    assert len(rows) == 60_000 and {r["outcome"] for r in rows} == {"interrupted"}
    assert sum("in flight" in r["error_message"] for r in rows) == 4  # cancelled, not answered
    # Let the cancelled requests end before the simulator stops.
    wait_for(lambda: len(sim.sim.requests) <= sum(sim.sim.status_counts.values()),
             what="the cancelled requests to end")
