"""The manifest beside the report: its fields, checksums that match the files, and a status that
tells how the job ended (finished, stopped by a safety rail, interrupted) without reading the
report."""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from helpers import FAST, PROJECT, ROOT, TOKEN, read_report, relabel_targets, wait_for, write_jobs
from worker import __version__
from worker.manifest import Manifest, read_manifest
from worker.runner import JobSpec, run_job
from worker.settings import ConfigError, load_settings
from worker.sources import InputSpec


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_manifest(report: Path) -> dict:
    return json.loads(Path(f"{report}.manifest.json").read_text(encoding="utf-8"))


def assert_matches_files(manifest: dict, jobs: Path, report: Path) -> None:
    assert manifest["input"] == {"path": str(jobs), "name": jobs.name,
                                 "size": jobs.stat().st_size, "sha256": sha256(jobs)}
    assert manifest["report"]["path"] == str(report)
    assert manifest["report_sha256"] == sha256(report)
    assert manifest["report_size"] == report.stat().st_size
    rows = read_report(report)
    counted = Counter(r["outcome"] for r in rows)
    assert {k: v for k, v in manifest["counts"].items() if v} == counted
    assert manifest["rows"] == len(rows)


async def run(sim, tmp_path, targets, **overrides):
    jobs = write_jobs(tmp_path / "jobs.csv", targets, [["not-a-uuid", "x"]])
    report = tmp_path / "report.csv"
    settings = load_settings({"endpoint": sim.url, "project_id": PROJECT, "token": TOKEN,
                              "rate": 0, "concurrency": 8, **FAST, **overrides})
    result = await run_job(settings, JobSpec(InputSpec(str(jobs)), str(report)),
                           on_terminal=False)
    return result, jobs, report


async def test_a_finished_job_records_every_field_and_checksums_of_both_files(sim, tmp_path):
    rate = 20  # 31 requests span more than a second: the window check below can fail
    result, jobs, report = await run(sim, tmp_path, relabel_targets(sim.snapshots, 30), rate=rate)
    manifest = load_manifest(report)

    assert (manifest["status"], manifest["exit_code"], manifest["stop_reason"]) == ("finished", 1, None)
    assert manifest["format_version"] == 1 and manifest["tool_version"] == __version__
    assert_matches_files(manifest, jobs, report)
    assert manifest["counts"]["applied"] == 30 and manifest["counts"]["rejected"] == 1
    assert set(manifest["counts"]) >= {"applied", "failed", "rejected", "not_attempted", "interrupted"}
    assert manifest["started_at"] <= manifest["finished_at"]
    assert manifest["requests"] == 30 and manifest["requests_per_s"] > 0
    # "Never over the rate", as the server saw it: no window of one second on its clock holds
    # more than the rate (the credential check included). A client-side figure would be timing.
    arrivals = sorted(r.t_mono for r in sim.requests)
    assert len(arrivals) == 31
    assert max(bisect.bisect_left(arrivals, t + 1.0) - i for i, t in enumerate(arrivals)) <= rate
    assert manifest["settings"]["rate"] == rate and manifest["settings"]["max_failure_rate"] == 0.5
    assert "token" not in manifest["settings"]
    assert TOKEN not in Path(f"{report}.manifest.json").read_text()


async def test_a_safety_stop_is_status_stopped_with_its_reason(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 200)
    sim.set_always_fail({sid: "401" for sid in targets})  # the token expired: every PUT refused
    result, jobs, report = await run(sim, tmp_path, targets)
    manifest = load_manifest(report)

    assert (manifest["status"], manifest["exit_code"]) == ("stopped", 3)
    assert manifest["stop_reason"] == "auth_failures"
    assert manifest["counts"]["not_attempted"] > 100
    assert_matches_files(manifest, jobs, report)


async def test_a_limit_is_a_finished_job_that_says_it_stopped_at_the_limit(sim, tmp_path):
    result, jobs, report = await run(sim, tmp_path, relabel_targets(sim.snapshots, 20), limit=5)
    manifest = load_manifest(report)

    assert (manifest["status"], manifest["stop_reason"]) == ("finished", "limit")
    assert manifest["counts"]["applied"] == 5 and manifest["counts"]["not_attempted"] == 15
    assert_matches_files(manifest, jobs, report)


def test_running_then_interrupted_by_sigterm(sim_thread, tmp_path):
    sim = sim_thread(snapshots=400)
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 400))
    report = tmp_path / "r.csv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "run", str(jobs), "--endpoint", sim.url,
         "--project-id", PROJECT, "--rate", "100", "--report", str(report)],
        cwd=ROOT, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                       "SNAPRELABEL_TOKEN": TOKEN},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # wait until rows are being applied
            if json.loads(line)["event"] == "job":
                break
        wait_for(Path(f"{report}.manifest.json").exists, what="the manifest", proc=proc)
        running = load_manifest(report)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert running["status"] == "running" and "finished_at" not in running
    assert proc.returncode == 143
    manifest = load_manifest(report)
    assert (manifest["status"], manifest["exit_code"]) == ("interrupted", 143)
    assert manifest["stop_reason"] == "SIGTERM"
    assert 0 < manifest["counts"]["applied"] < 400
    assert manifest["counts"]["interrupted"] == 400 - manifest["counts"]["applied"]
    assert_matches_files(manifest, jobs, report)


# --- hostile files beside the report (issue 12) ---

def test_a_link_planted_as_the_temporary_manifest_is_never_followed(tmp_path):
    """The manifest is written to a temporary file and renamed: a link planted under the old
    fixed name (<report>.manifest.json.tmp) must not lead the write to its target."""
    target = tmp_path / "precious"
    target.write_text("keep me")
    report = tmp_path / "r.csv"
    os.symlink(target, f"{report}.manifest.json.tmp")
    os.symlink(target, f"{report}.manifest.json")  # a link at the manifest's own name is replaced
    Manifest(str(report), "csv", "jobs.csv", {}).write()
    assert target.read_text() == "keep me"
    assert not Path(f"{report}.manifest.json").is_symlink() and load_manifest(report)["status"] == "running"
    assert stat.S_IMODE(os.stat(f"{report}.manifest.json").st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious", "r.csv.manifest.json",
                                                         "r.csv.manifest.json.tmp"]


@pytest.mark.parametrize("damage", [
    {"input": "jobs.csv"}, {"input": {"sha256": 12}}, {"input": {"size": "12"}}, {"report": []},
    {"resumed": "twice"}, {"resumed": {"runs": "2"}}, {"settings": ["x"]}, {"started_at": 0},
])
async def test_a_manifest_with_fields_of_the_wrong_type_is_one_clear_refusal(sim, tmp_path, damage):
    result, jobs, report = await run(sim, tmp_path, relabel_targets(sim.snapshots, 3))
    manifest = load_manifest(report)
    Path(f"{report}.manifest.json").write_text(json.dumps({**manifest, **damage}))
    assert read_manifest(str(report)) is None
    settings = load_settings({"endpoint": sim.url, "project_id": PROJECT, "token": TOKEN, "rate": 0})
    with pytest.raises(ConfigError, match=r"manifest .* is missing or unreadable"):
        await run_job(settings, JobSpec(InputSpec(str(jobs)), str(report), resume=True), on_terminal=False)


async def test_a_jobs_file_that_grew_resumes_with_its_new_rows(sim, tmp_path):
    """The manifest's digest covers the file as it was when the report began: a file that has
    only grown since (rows appended) resumes, and its new lines run; one changed is refused."""
    targets = relabel_targets(sim.snapshots, 6)
    first = dict(list(targets.items())[:4])
    result, jobs, report = await run(sim, tmp_path, first)  # lines 2-5, and a bad row on line 6
    with jobs.open("a", encoding="utf-8") as f:
        f.writelines(f"{sid},{name}\n" for sid, name in list(targets.items())[4:])
    sim.reset_records()
    settings = load_settings({"endpoint": sim.url, "project_id": PROJECT, "token": TOKEN, "rate": 0})
    resume = JobSpec(InputSpec(str(jobs)), str(report), resume=True)
    again = await run_job(settings, resume, on_terminal=False)
    assert again.summary.skipped == 5
    assert {r.snapshot_id for r in sim.requests if r.method == "PUT"} == set(list(targets)[4:])
    rows = read_report(report)
    assert sorted(int(r["line"]) for r in rows) == [2, 3, 4, 5, 6, 7, 8]
    assert load_manifest(report)["input"]["size"] == jobs.stat().st_size  # the next resume's digest

    jobs.write_text(jobs.read_text().replace("new-00000", "changed"))
    with pytest.raises(ConfigError, match="belongs to another jobs file"):
        await run_job(settings, resume, on_terminal=False)
