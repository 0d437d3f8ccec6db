"""A wrong project id is caught early: the credential check's listing answers 200 with an empty
list, and every row then answers 404. When the first rows sent all answer 404 the job stops
(exit 3) with one line naming the likely cause, instead of sending every row (exit 1)."""

from __future__ import annotations

import json

from helpers import PROJECT, TOKEN, read_report, relabel_targets, run_cli, write_jobs

OTHER_PROJECT = "fedcba9876543210fedcba9876543210"


def test_a_project_that_holds_none_of_the_snapshots_stops_after_the_first_rows(sim_thread, tmp_path):
    sim = sim_thread(snapshots=80)
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 60))
    done = run_cli("run", str(jobs), "--report", str(tmp_path / "r.csv"), "--endpoint", sim.url,
                   "--project-id", OTHER_PROJECT, "--rate", "0", "--concurrency", "2",
                   env={"SNAPRELABEL_TOKEN": TOKEN})
    assert done.returncode == 3, done.stderr
    rows = read_report(tmp_path / "r.csv")
    failed = [r for r in rows if r["outcome"] == "failed"]
    assert all(r["http_status"] == "404" for r in failed) and 10 <= len(failed) <= 12
    assert sum(r["outcome"] == "not_attempted" for r in rows) == 60 - len(failed)
    stops = [json.loads(line) for line in done.stdout.splitlines() + done.stderr.splitlines()
             if line.startswith("{") and '"safety_stop"' in line]
    assert len(stops) == 1 and stops[0]["reason"] == "not_found"
    assert f"is the project id {OTHER_PROJECT} right" in stops[0]["why"]
    assert stops[0]["rows_sent"] == 10  # at the stop; a row in flight then may finish after it


def test_a_few_missing_snapshots_among_found_ones_do_not_stop_the_job(sim_thread, tmp_path):
    sim = sim_thread(snapshots=80)
    ghosts = [["00000000-0000-4000-8000-%012d" % i, "x"] for i in range(12)]
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 5), ghosts)
    done = run_cli("run", str(jobs), "--report", str(tmp_path / "r.csv"), "--endpoint", sim.url,
                   "--project-id", PROJECT, "--rate", "0", "--concurrency", "1",
                   env={"SNAPRELABEL_TOKEN": TOKEN})
    assert done.returncode == 1, done.stderr
    outcomes = [r["outcome"] for r in read_report(tmp_path / "r.csv")]
    assert (outcomes.count("applied"), outcomes.count("failed")) == (5, 12)
