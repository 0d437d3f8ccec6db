"""The command line as a user runs it: a child process, exit codes, one-line errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from helpers import NO_METADATA, PROJECT, ROOT, TOKEN, read_report, relabel_targets, run_cli, wait_for, write_jobs

GHOST = "00000000-0000-4000-8000-000000000000"


def job_args(sim, jobs, report, *extra):
    return ("run", str(jobs), "--endpoint", sim.url, "--project-id", PROJECT, "--rate", "0",
            "--report", str(report), "--backoff-base", "0.01", *extra)


ENV = {"SNAPRELABEL_TOKEN": TOKEN}


def test_exit_0_when_every_row_is_applied(sim_thread, tmp_path):
    sim = sim_thread(snapshots=20)
    targets = relabel_targets(sim.sim.snapshots, 10)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    done = run_cli(*job_args(sim, jobs, tmp_path / "r.csv"), env=ENV)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["event"] for e in events if e["event"] != "job"] == ["start", "summary"]
    assert sum(e["event"] == "job" for e in events) == 10
    assert events[-1]["applied"] == 10 and events[-1]["exit_code"] == 0
    assert all(sim.sim.snapshots[s]["name"] == n for s, n in targets.items())


def test_exit_1_when_some_rows_are_rejected_or_failed(sim_thread, tmp_path):
    sim = sim_thread(snapshots=20)
    targets = relabel_targets(sim.sim.snapshots, 5)
    jobs = write_jobs(tmp_path / "jobs.csv", targets, [["bad-id", "x"], [GHOST, "y"]])
    done = run_cli(*job_args(sim, jobs, tmp_path / "r.csv"), env=ENV)
    assert done.returncode == 1
    outcomes = sorted(r["outcome"] for r in read_report(tmp_path / "r.csv"))
    assert outcomes == ["applied"] * 5 + ["failed", "rejected"]


@pytest.mark.parametrize("args, message", [
    (("run", "jobs.csv", "--rate", "fast"), "argument --rate: 'fast' is not a rate (10, 10/s, 600/min"),
    (("run", "jobs.csv", "--bogus"), "unrecognized arguments: --bogus"),
    (("run", "jobs.csv", "--endpoint", "ftp://x"), "setting endpoint: 'ftp://x' is not an http(s) URL"),
    (("run", "jobs.csv", "--rate", "-3"), "argument --rate: '-3' is not a rate"),
    (("run", "missing.csv", "--endpoint", "http://127.0.0.1:9", "--no-auth"), "cannot read missing.csv"),
    (("run", "jobs.csv", "--endpoint", "http://127.0.0.1:9"), "no credentials"),
    (("run", "jobs.csv", "--config", "nope.toml"), "config file nope.toml: not found"),
    (("run", "jobs.csv", "--path-family", "v9"), "invalid choice: 'v9'"),
])
def test_bad_usage_is_one_clear_line_and_exit_2(tmp_path, args, message):
    write_jobs(tmp_path / "jobs.csv", {GHOST: "x"})
    done = subprocess.run([sys.executable, "-m", "worker", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **NO_METADATA})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "r.csv").exists()


def test_a_bad_config_file_value_is_one_line(tmp_path):
    (tmp_path / "c.toml").write_text('rate = "fast"\nconcurency = 3\n')
    done = run_cli("validate", "x.csv", "--config", str(tmp_path / "c.toml"))
    assert done.returncode == 2
    assert "setting rate: must be a number of requests per second" in done.stderr
    assert "setting concurency: unknown setting" in done.stderr


def test_flags_override_env_which_overrides_the_config_file(sim_thread, tmp_path):
    sim = sim_thread(snapshots=5)
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 2))
    (tmp_path / "c.toml").write_text(f'endpoint = "http://127.0.0.1:9"\nproject_id = "{PROJECT}"\n'
                                     'path_family = "evs"\nrate = 1\n')
    env = {**ENV, "SNAPRELABEL_ENDPOINT": sim.url, "SNAPRELABEL_PATH_FAMILY": "cinder-v3"}
    done = run_cli("run", str(jobs), "--config", str(tmp_path / "c.toml"), "--report",
                   str(tmp_path / "r.csv"), "--rate", "0", env=env)
    assert done.returncode == 0, done.stderr
    start = json.loads(done.stdout.splitlines()[0])
    assert (start["endpoint"], start["path_family"], start["rate"]) == (sim.url, "cinder-v3", 0.0)
    assert {r.family for r in sim.sim.requests} == {"cinder-v3"}


def test_dry_run_sends_nothing_and_reports_what_would_be_sent(sim_thread, tmp_path):
    sim = sim_thread(snapshots=10)
    targets = relabel_targets(sim.sim.snapshots, 4)
    jobs = write_jobs(tmp_path / "jobs.csv", targets, [["bad", "x"]])
    done = run_cli(*job_args(sim, jobs, tmp_path / "r.csv", "--dry-run"), env=ENV)
    assert done.returncode == 1  # one row is invalid
    rows = read_report(tmp_path / "r.csv")
    assert sorted(r["outcome"] for r in rows) == ["dry_run"] * 4 + ["rejected"]
    assert sim.sim.requests == []


def test_validate_sends_nothing_and_names_file_line_and_field(sim_thread, tmp_path):
    sim = sim_thread(snapshots=5)
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 2),
                      [["bad-id", "x"], [GHOST, "快" * 86]])
    done = run_cli("validate", str(jobs), "--project-id", PROJECT,
                   env={"SNAPRELABEL_ENDPOINT": sim.url})
    assert done.returncode == 1
    assert f"{jobs}:4: snapshot_id: 'bad-id' is not a UUID [invalid_uuid]" in done.stdout
    assert f"{jobs}:5: name: 258 bytes in UTF-8, the limit is 255 [too_long]" in done.stdout
    assert "4 rows: 2 valid, 2 rejected" in done.stderr
    assert sim.sim.requests == []


def test_stdin_input_and_jsonl_report(sim_thread, tmp_path):
    sim = sim_thread(snapshots=5)
    sid = sorted(sim.sim.snapshots)[0]
    done = run_cli(*job_args(sim, "-", tmp_path / "r.jsonl", "--report-format", "jsonl"),
                   env=ENV, stdin=f"snapshot_id,name\n{sid},piped\n".encode())
    assert done.returncode == 0, done.stderr
    row = json.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])
    assert (row["line"], row["outcome"], row["server_name"]) == (2, "applied", "piped")
    assert sim.sim.snapshots[sid]["name"] == "piped"


def test_an_existing_report_is_never_overwritten_silently(sim_thread, tmp_path):
    sim = sim_thread(snapshots=5)
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 1))
    (tmp_path / "r.csv").write_text("precious\n")
    done = run_cli(*job_args(sim, jobs, tmp_path / "r.csv"), env=ENV)
    assert done.returncode == 2 and "already exists: pass --overwrite" in done.stderr
    assert (tmp_path / "r.csv").read_text() == "precious\n"
    assert run_cli(*job_args(sim, jobs, tmp_path / "r.csv", "--overwrite"), env=ENV).returncode == 0


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_drains_and_records_every_unfinished_row(sim_thread, tmp_path, signum, code):
    sim = sim_thread(snapshots=300)
    targets = relabel_targets(sim.sim.snapshots, 300)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    report = tmp_path / "r.csv"
    args = job_args(sim, jobs, report, "--rate", "50", "--grace", "5")
    proc = subprocess.Popen([sys.executable, "-m", "worker", *args], cwd=ROOT, env={
        "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **ENV},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Signalled once rows are being applied (the simulator has had 40 PUTs): a fixed sleep was
    # outlasted by the child's start on a loaded machine.
    wait_for(lambda: sim.sim.method_counts["PUT"] >= 40, what="the job's first 40 PUTs", proc=proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    rows = read_report(report)
    assert len(rows) == 300  # one row per input row, even the ones never read
    outcomes = {r["outcome"] for r in rows}
    assert outcomes == {"applied", "interrupted"}
    applied = [r for r in rows if r["outcome"] == "applied"]
    assert 20 < len(applied) < 300
    put_ids = {r.snapshot_id for r in sim.sim.requests if r.method == "PUT"}
    assert {r["snapshot_id"] for r in applied} == put_ids  # nothing sent went unreported
    summary = json.loads(out.splitlines()[-1])
    assert summary["event"] == "summary" and summary["interrupted"] == 300 - len(applied)
    manifest = json.loads((tmp_path / "r.csv.manifest.json").read_text())
    assert manifest["status"] == "interrupted" and manifest["exit_code"] == code
