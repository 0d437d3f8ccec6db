"""`snaprelabel retry`: the jobs file of a report's failed and unfinished rows, with their
original targets, that `run` then applies; refused when the input changed or the file is not a
report. Reports come from real jobs against the simulator."""

from __future__ import annotations

import csv
import json

from helpers import PROJECT, TOKEN, read_report, relabel_targets, run_cli, write_jobs
from helpers import run_jobs_file as run
from worker.rerun import link_retry

GHOST = "00000000-0000-4000-8000-000000000000"


def read_jobs(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


async def test_failed_rows_are_written_with_their_targets_and_a_second_run_applies_them(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 30)
    refused = sorted(targets)[:3]
    sim.set_always_fail({sid: "403" for sid in refused})  # a role that may not update, for now
    jobs = write_jobs(tmp_path / "jobs.csv", targets, [["bad-id", "x"]])
    report = tmp_path / "r.csv"
    assert (await run(sim, jobs, report)).exit_code == 1
    first = report.read_bytes()

    done = run_cli("retry", str(report), "-o", str(tmp_path / "again.csv"))

    assert done.returncode == 0, done.stderr
    assert f"retry: 3 rows to run again from {report} (failed 3)" in done.stderr
    rows = read_jobs(tmp_path / "again.csv")
    assert [(r["snapshot_id"], r["project_id"], r["name"], r["description"]) for r in rows] == [
        (sid, PROJECT, targets[sid], "") for sid in refused]
    sim.set_always_fail({})  # the operator grants the permission
    sim.reset_records()
    result = await run(sim, tmp_path / "again.csv", tmp_path / "again-report.csv")
    assert result.exit_code == 0
    assert {r.snapshot_id for r in sim.requests if r.method == "PUT"} == set(refused)
    assert all(sim.snapshots[sid]["name"] == targets[sid] for sid in refused)
    assert report.read_bytes() == first  # the first report is never rewritten


async def test_error_code_and_outcome_choose_the_rows(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 20)
    ids = sorted(targets)
    sim.set_always_fail({ids[0]: "404", ids[1]: "503"})
    jobs = write_jobs(tmp_path / "jobs.csv", targets, [[GHOST, "ghost"]])
    report = tmp_path / "r.csv"
    await run(sim, jobs, report, max_attempts=2)

    only_503 = run_cli("retry", str(report), "--error-code", "503")
    assert only_503.returncode == 0, only_503.stderr
    assert [r["snapshot_id"] for r in csv.DictReader(only_503.stdout.splitlines())] == [ids[1]]
    by_code = run_cli("retry", str(report), "--error-code", "itemNotFound")
    assert [r["snapshot_id"] for r in csv.DictReader(by_code.stdout.splitlines())] == [GHOST]
    applied = run_cli("retry", str(report), "--outcome", "applied")
    assert applied.returncode == 2 and "'applied' is not one of failed" in applied.stderr


async def test_a_resumed_report_retries_only_what_is_still_unfinished(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 20)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    report = tmp_path / "r.csv"
    await run(sim, jobs, report, limit=5, concurrency=1)  # 15 not_attempted
    assert len(read_jobs_from(run_cli("retry", str(report)))) == 15
    await run(sim, jobs, report, resume=True, limit=10, concurrency=1)  # 5 still not attempted
    rows = read_report(report)
    assert len(rows) == 35  # 15 not_attempted superseded by 10 applied and 5 not_attempted again
    left = read_jobs_from(run_cli("retry", str(report)))
    unanswered = {r["snapshot_id"] for r in rows[-5:]}
    assert {r["snapshot_id"] for r in left} == unanswered and len(left) == 5


def read_jobs_from(done):
    assert done.returncode == 0, done.stderr
    return list(csv.DictReader(done.stdout.splitlines()))


async def test_a_json_lines_report_gives_a_json_lines_jobs_file(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 10)
    gone = sorted(targets)[4]
    sim.set_always_fail({gone: "404"})
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    report = tmp_path / "r.jsonl"
    await run(sim, jobs, report, report_format="jsonl")
    done = run_cli("retry", str(report), "-o", str(tmp_path / "again.jsonl"))
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "again.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"snapshot_id": gone, "project_id": PROJECT, "name": targets[gone]}]


async def test_a_changed_input_is_refused_and_nothing_is_written(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 10)
    sim.set_always_fail({sorted(targets)[0]: "403"})
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    report = tmp_path / "r.csv"
    await run(sim, jobs, report)
    write_jobs(jobs, {**targets, sorted(targets)[0]: "fixed-name"})  # the operator edits the file

    done = run_cli("retry", str(report), "-o", str(tmp_path / "again.csv"))

    assert done.returncode == 2
    assert f"{jobs} has changed since {report} was begun" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "again.csv").exists()
    write_jobs(jobs, targets, [[GHOST, "more"]])  # the original with rows appended: the same job
    grown = run_cli("retry", str(report))
    assert grown.returncode == 0, grown.stderr


def test_a_file_that_is_not_a_report_is_refused(tmp_path):
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("snapshot_id,name\nx,y\n")
    lines = tmp_path / "other.jsonl"
    lines.write_text('{"snapshot_id": "x", "name": "y"}\n')
    for path in (jobs, lines):
        done = run_cli("retry", str(path))
        assert done.returncode == 2 and "not a snaprelabel report" in done.stderr, done.stderr
        assert done.stdout == "" and "Traceback" not in done.stderr


def test_run_retry_from_runs_the_failed_rows_into_a_second_report_linked_from_both_manifests(sim_thread, tmp_path):
    sim = sim_thread(snapshots=50)
    targets = relabel_targets(sim.sim.snapshots, 20)
    refused = sorted(targets)[:4]
    sim.call(sim.sim.set_always_fail, {sid: "403" for sid in refused})
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    common = ("--endpoint", sim.url, "--project-id", PROJECT, "--rate", "0", "--backoff-base", "0.01")
    env = {"SNAPRELABEL_TOKEN": TOKEN}
    first = tmp_path / "r.csv"
    assert run_cli("run", str(jobs), "--report", str(first), *common, env=env).returncode == 1
    before = first.read_bytes()
    sim.call(sim.sim.set_always_fail, {})

    done = run_cli("run", "--retry-from", str(first), *common, env=env)

    assert done.returncode == 0, done.stderr
    second, retry_jobs = tmp_path / "r.retry-1.csv", tmp_path / "r.retry-1.jobs.csv"
    assert f"4 rows of {first} to run again, from {retry_jobs}" in done.stderr
    assert sorted(r["snapshot_id"] for r in read_report(second)) == refused
    assert {r["outcome"] for r in read_report(second)} == {"applied"}
    assert all(sim.sim.snapshots[sid]["name"] == targets[sid] for sid in refused)
    assert first.read_bytes() == before  # the first report is never rewritten
    linked = json.loads((tmp_path / "r.csv.manifest.json").read_text())["retried_by"]
    assert [(entry["report"], entry["jobs"]) for entry in linked] == [(str(second), str(retry_jobs))]
    back = json.loads((tmp_path / "r.retry-1.csv.manifest.json").read_text())
    assert back["retry_of"] == {"report": str(first), "jobs": str(retry_jobs)}
    assert back["input"]["path"] == str(retry_jobs) and back["status"] == "finished"

    again = run_cli("run", "--retry-from", str(second), *common, env=env)  # nothing left to run
    assert again.returncode == 0 and f"0 rows of {second} to run again" in again.stderr
    both = run_cli("run", str(jobs), "--retry-from", str(first), *common, env=env)
    assert both.returncode == 2 and "--retry-from takes the jobs from the report" in both.stderr


async def test_a_resumed_report_keeps_its_manifests_links_to_its_retries(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 10)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    report = tmp_path / "r.csv"
    await run(sim, jobs, report, limit=4, concurrency=1)
    manifest_file = tmp_path / "r.csv.manifest.json"
    link_retry(str(report), str(tmp_path / "r.retry-1.csv"), str(tmp_path / "r.retry-1.jobs.csv"))

    await run(sim, jobs, report, resume=True)

    manifest = json.loads(manifest_file.read_text())
    assert manifest["resumed"]["runs"] == 2
    assert [entry["report"] for entry in manifest["retried_by"]] == [str(tmp_path / "r.retry-1.csv")]
