"""Identity as deployed clouds hand it out, end to end through the CLI against the simulator: a
devstack openrc that names its project instead of giving its id, application credentials, and a
token whose roles may only read."""

from __future__ import annotations

import json

from helpers import PROJECT, read_report, relabel_targets, run_cli, write_jobs
from worker.simulator.identity import AppCredential, User

USER = User("dora", "dora-password-7e21a", domain="Lab", domain_id="lab-id")
READER = User("rita", "rita-password-3c1d9", domain="Lab", domain_id="lab-id", roles=("reader",))
APP = AppCredential("9a8b7c6d5e4f40312a1b2c3d4e5f6a7b", "dora-app-secret-41f0c2", "nightly", USER)


def openrc(sim, user=USER, **extra):
    """A devstack openrc: the project by name and domain, no OS_PROJECT_ID."""
    return {"OS_AUTH_URL": f"{sim.url}/v3", "OS_USERNAME": user.name, "OS_PASSWORD": user.password,
            "OS_USER_DOMAIN_NAME": user.domain, "OS_PROJECT_NAME": user.project_name,
            "OS_PROJECT_DOMAIN_NAME": user.domain, "OS_REGION_NAME": "sim-1", **extra}


def test_a_devstack_openrc_runs_a_jobs_file_without_project_ids_in_the_tokens_project(sim_thread, tmp_path):
    sim = sim_thread(snapshots=30, users=(USER,))
    targets = relabel_targets(sim.sim.snapshots, 20)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)  # no project_id column
    check = run_cli("auth", "check", env=openrc(sim))
    assert check.returncode == 0, check.stderr
    assert f"project: {PROJECT} (sim-project) (rows without a project_id go here)" in check.stdout
    done = run_cli("run", str(jobs), "--report", str(tmp_path / "r.csv"), "--rate", "0", env=openrc(sim))
    assert done.returncode == 0, done.stderr
    rows = read_report(tmp_path / "r.csv")
    assert {(r["outcome"], r["project_id"]) for r in rows} == {("applied", PROJECT)}
    assert all(sim.sim.snapshots[sid]["name"] == name for sid, name in targets.items())
    manifest = json.loads((tmp_path / "r.csv.manifest.json").read_text())
    assert manifest["settings"]["project_id"] == PROJECT  # a resume checks it


def test_with_no_project_anywhere_the_message_names_every_way_to_give_one(sim_thread, tmp_path):
    sim = sim_thread(snapshots=5)
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 2))
    done = run_cli("run", str(jobs), "--report", str(tmp_path / "r.csv"), "--dry-run")
    assert done.returncode == 2
    line, = done.stderr.strip().splitlines()
    assert "no project_id column" in line
    assert all(name in line for name in ("--project-id", "OS_PROJECT_ID", "OS_PROJECT_NAME"))
    assert not (tmp_path / "r.csv").exists()


def test_an_application_credential_from_the_environment_runs_a_job(sim_thread, tmp_path):
    sim = sim_thread(snapshots=30, users=(USER,), app_credentials=(APP,))
    targets = relabel_targets(sim.sim.snapshots, 20)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    env = {"OS_AUTH_TYPE": "v3applicationcredential", "OS_AUTH_URL": sim.url, "OS_REGION_NAME": "sim-1",
           "OS_APPLICATION_CREDENTIAL_NAME": APP.name, "OS_USERNAME": USER.name,
           "OS_USER_DOMAIN_NAME": USER.domain, "OS_APPLICATION_CREDENTIAL_SECRET": APP.secret}
    done = run_cli("run", str(jobs), "--report", str(tmp_path / "r.csv"), "--rate", "0", env=env)
    assert done.returncode == 0, done.stderr
    start = next(e for e in map(json.loads, done.stdout.splitlines()) if e["event"] == "start")
    assert start["auth"] == "application_credential" and start["project_id"] == PROJECT
    assert {r["outcome"] for r in read_report(tmp_path / "r.csv")} == {"applied"}
    assert all(sim.sim.snapshots[sid]["name"] == name for sid, name in targets.items())
    assert [(r.status, r.method) for r in sim.sim.identity.token_requests] == [(201, "application_credential")]
    # A wrong secret: one line, exit 2, one login, nothing sent.
    sim.sim.requests.clear()
    bad = run_cli("run", str(jobs), "--report", str(tmp_path / "r2.csv"),
                  env={**env, "OS_APPLICATION_CREDENTIAL_SECRET": "not-the-app-secret"})
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "application credential 'nightly' of user 'dora'" in bad.stderr and "HTTP 401" in bad.stderr
    assert "not-the-app-secret" not in bad.stderr + bad.stdout and sim.sim.requests == []


def test_a_reader_only_token_passes_the_check_with_a_warning_and_its_run_stops(sim_thread, tmp_path):
    sim = sim_thread(snapshots=40, users=(USER, READER))
    check = run_cli("auth", "check", env=openrc(sim, READER))
    assert check.returncode == 0, check.stderr  # the credentials work: a GET is allowed
    assert "roles: reader (may list snapshots, not update them)" in check.stdout
    warning, = [line for line in check.stdout.splitlines() if line.startswith("warning: ")]
    assert "none of the token's roles (reader) may update snapshots" in warning and "403" in warning
    member = run_cli("auth", "check", env=openrc(sim))
    assert "roles: member, reader (may list and update snapshots)" in member.stdout
    assert "warning" not in member.stdout

    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 30))
    done = run_cli("run", str(jobs), "--report", str(tmp_path / "r.csv"), "--rate", "0",
                   "--concurrency", "1", env=openrc(sim, READER))
    assert done.returncode == 3, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    first_warning = next(e for e in events if e.get("level") == "warning")
    assert first_warning["event"] == "read-only roles"  # said before the first PUT
    assert events.index(first_warning) < next(i for i, e in enumerate(events) if e["event"] == "start")
    rows = read_report(tmp_path / "r.csv")
    assert {r["http_status"] for r in rows if r["outcome"] == "failed"} == {"403"}
    assert "not_attempted" in {r["outcome"] for r in rows}
    assert not [s for s in sim.sim.snapshots.values() if s["name"].startswith("new-")]
