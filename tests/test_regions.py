"""One job across several projects and regions, against the simulator over real sockets: one
project-scoped token per project (single-flight, renewed for its project only), AK/SK signed
with each row's X-Project-Id, each region's endpoint from the catalog or an --endpoint holding
{region}, one rate limit for the whole job, a refused pair failing its own rows only, and
`auth check --jobs` proving every pair, one line each."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import pytest

from helpers import FAST, PROJECT, TOKEN, read_report, run_cli
from worker.runner import JobSpec, run_job
from worker.settings import ConfigError, load_settings
from worker.simulator.identity import AccessKeyPair, CatalogEntry, User
from worker.sources import InputSpec

P2 = "fedcba9876543210fedcba9876543210"
P3 = "00112233445566778899aabbccddeeff"  # served, but USER has no role on it
USER = User("ann", "ann-password-41d7c", domain="Lab", domain_id="lab-id", projects=(P2,))
KEY = AccessKeyPair("SIMAKANN000000000001", "ann-secret-key-9b1e07")
REGIONS = ("r1", "r2")
CATALOG = tuple(
    CatalogEntry(kind, "public", region, "{self}/regions/" + region + path)
    for region in REGIONS
    for kind, path in (("volumev3", "/v3/{project_id}"), ("identity", "/v3"))
)
MULTI = {"snapshots": 40, "projects": (P2, P3), "users": (USER,), "catalog": CATALOG,
         "access_keys": (KEY,)}


def password_settings(sim, **overrides):
    return {"auth_url": f"{sim.url}/v3", "username": USER.name, "password": USER.password,
            "user_domain_name": USER.domain, "project_id": PROJECT, "region": "r1", **overrides}


def rows_for(sim, projects, regions, per_pair=10, prefix="moved"):
    """[(snapshot id, project, region, new name)]: `per_pair` snapshots of each project in each
    region (a snapshot of the store belongs to one project, whatever the region)."""
    out = []
    for project in projects:
        ids = sorted(s["id"] for s in sim.snapshots.values() if s["project_id"] == project)
        for r, region in enumerate(regions):
            for sid in ids[r * per_pair:(r + 1) * per_pair]:
                out.append((sid, project, region, f"{prefix}-{project[:4]}-{region}-{sid[:8]}"))
    return out


def write_rows(path: Path, rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["snapshot_id", "project_id", "region", "name"])
        out.writerows([sid, project, region or "", name] for sid, project, region, name in rows)
    return path


async def run(tmp_path, rows, settings, **overrides):
    jobs = write_rows(tmp_path / "jobs.csv", rows)
    report = tmp_path / "report.csv"
    values = {"rate": 0, "concurrency": 16, **FAST, **settings, **overrides}
    result = await run_job(load_settings(values), JobSpec(InputSpec(str(jobs)), str(report)),
                           on_terminal=False)
    return result, {r["snapshot_id"]: r for r in read_report(report)}, report


def puts(sim):
    return [r for r in sim.requests if r.method == "PUT"]


def region_of(path: str) -> str | None:
    return path.split("/")[2] if path.startswith("/regions/") else None


@pytest.mark.parametrize("sim", [MULTI], indirect=True)
async def test_two_projects_in_two_regions_one_job_one_token_per_project(sim, tmp_path):
    rows = rows_for(sim, (PROJECT, P2), REGIONS)
    result, report, path = await run(tmp_path, rows, password_settings(sim))

    assert result.exit_code == 0
    assert {r["outcome"] for r in report.values()} == {"applied"} and len(report) == 40
    for sid, project, region, name in rows:
        assert sim.snapshots[sid]["project_id"] == project and sim.snapshots[sid]["name"] == name
        assert (report[sid]["project_id"], report[sid]["region"]) == (project, region)
    # Each PUT went to its row's region, under its row's project.
    sent = {r.snapshot_id: r for r in puts(sim)}
    assert len(sent) == 40 and len(puts(sim)) == 40
    for sid, project, region, _ in rows:
        assert region_of(sent[sid].path) == region and sent[sid].project_id == project
    # One token per project, however many senders met the project at once (single-flight).
    issued = [t for t in sim.identity.token_requests if t.status == 201]
    assert sorted(t.project for t in issued) == sorted([PROJECT, P2])
    # Each pair proven once, by a listing GET in its region, before its first PUT.
    proofs = [(region_of(r.path), r.project_id) for r in sim.requests if r.method == "GET"]
    assert sorted(proofs) == sorted((g, p) for p in (PROJECT, P2) for g in REGIONS)
    manifest = json.loads(Path(f"{path}.manifest.json").read_text())
    assert manifest["by_pair"] == {
        f"{p}@{g}": {"applied": 10} for p in (PROJECT, P2) for g in REGIONS}
    assert sorted(manifest["settings"]["pairs"]) == sorted(f"{p}@{g}" for p in (PROJECT, P2) for g in REGIONS)


@pytest.mark.parametrize("sim", [MULTI], indirect=True)
async def test_a_one_project_job_reports_as_before(sim, tmp_path):
    rows = [(sid, PROJECT, None, name) for sid, _, _, name in rows_for(sim, (PROJECT,), ("r1",))]
    result, report, path = await run(tmp_path, rows, password_settings(sim))
    assert result.exit_code == 0 and {r["region"] for r in report.values()} == {""}
    manifest = json.loads(Path(f"{path}.manifest.json").read_text())
    assert "by_pair" not in manifest and "pairs" not in manifest["settings"]


@pytest.mark.parametrize("sim", [{**MULTI, "snapshots": 150}], indirect=True)
async def test_a_revoked_token_is_renewed_for_its_project_only(sim, tmp_path):
    async def revoke_p2_after(n):
        while sum(sim.apply_counts.values()) < n:
            await asyncio.sleep(0.01)
        for token, issued in list(sim.identity.issued.items()):
            if issued.project_id == P2:
                del sim.identity.issued[token]

    rows = rows_for(sim, (PROJECT, P2), ("r1",), per_pair=150)
    rows = [r for pair in zip(rows[:150], rows[150:], strict=True) for r in pair]  # interleaved
    revoker = asyncio.create_task(revoke_p2_after(60))
    result, report, _ = await run(tmp_path, rows, password_settings(sim), rate=150)
    await revoker

    assert result.exit_code == 0 and {r["outcome"] for r in report.values()} == {"applied"}
    refused = [r for r in puts(sim) if r.status == 401]
    assert refused and {r.project_id for r in refused} == {P2}
    issued = [t.project for t in sim.identity.token_requests if t.status == 201]
    assert sorted(issued) == sorted([PROJECT, P2, P2])  # P2 renewed once, PROJECT never


@pytest.mark.parametrize("sim", [MULTI], indirect=True)
async def test_a_project_the_user_may_not_use_fails_its_rows_only(sim, tmp_path):
    rows = rows_for(sim, (PROJECT, P3, P2), ("r1",))
    result, report, _ = await run(tmp_path, rows, password_settings(sim))

    assert result.exit_code == 1  # rows failed; not a stop
    for sid, project, _, name in rows:
        row = report[sid]
        if project == P3:
            assert (row["outcome"], row["error_code"], row["attempts"]) == ("failed", "pair_refused", "0")
            assert f"project id {P3}" in row["error_message"] and "HTTP 401" in row["error_message"]
            assert sim.snapshots[sid]["name"] != name
        else:
            assert row["outcome"] == "applied" and sim.snapshots[sid]["name"] == name
    assert not [r for r in sim.requests if r.project_id == P3]
    refused = [t for t in sim.identity.token_requests if t.status == 401]
    assert [t.project for t in refused] == [P3]  # asked once, never again


@pytest.mark.parametrize("sim", [MULTI], indirect=True)
async def test_aksk_signs_each_row_for_its_project_at_its_regions_endpoint(sim, tmp_path):
    settings = {"endpoint": f"{sim.url}/regions/{{region}}", "access_key": KEY.access_key,
                "secret_key": KEY.secret_key, "project_id": PROJECT, "region": "r1"}
    rows = rows_for(sim, (PROJECT, P2), REGIONS)
    result, report, _ = await run(tmp_path, rows, settings)

    assert result.exit_code == 0 and {r["outcome"] for r in report.values()} == {"applied"}
    for put in puts(sim):
        assert put.headers["x-project-id"] == put.project_id
    assert {(region_of(r.path), r.project_id) for r in puts(sim)} == {
        (g, p) for p in (PROJECT, P2) for g in REGIONS}


@pytest.mark.parametrize("sim", [{**MULTI, "rate_limit": 60}], indirect=True)
async def test_one_rate_limit_for_every_pair_of_the_job(sim, tmp_path):
    # Four pairs at --rate 40 each would be 160/s against a gateway that takes 60/s: no 429
    # means the pairs share the one limit.
    rows = rows_for(sim, (PROJECT, P2), REGIONS, per_pair=20)
    result, report, _ = await run(tmp_path, rows, password_settings(sim), rate=40)
    assert result.exit_code == 0 and {r["outcome"] for r in report.values()} == {"applied"}
    assert sim.status_counts[429] == 0


@pytest.mark.parametrize("sim", [MULTI], indirect=True)
async def test_a_token_job_naming_two_projects_is_refused_before_anything_is_sent(sim, tmp_path):
    settings = {"endpoint": sim.url, "token": TOKEN, "project_id": PROJECT}
    with pytest.raises(ConfigError, match="a token acts for one project"):
        await run(tmp_path, rows_for(sim, (PROJECT, P2), ("r1",)), settings)
    assert not puts(sim) and not (tmp_path / "report.csv").exists()


@pytest.mark.parametrize("sim", [MULTI], indirect=True)
async def test_an_endpoint_without_region_refuses_a_job_naming_two_regions(sim, tmp_path):
    settings = {"endpoint": sim.url, "access_key": KEY.access_key, "secret_key": KEY.secret_key,
                "project_id": PROJECT}
    with pytest.raises(ConfigError, match="serves one region"):
        await run(tmp_path, rows_for(sim, (PROJECT,), REGIONS), settings)
    assert not puts(sim)


def test_stdin_proves_each_pair_when_met_and_fails_a_refused_ones_rows(sim_thread, tmp_path):
    handle = sim_thread(**MULTI)
    rows = rows_for(handle.sim, (PROJECT, P3), ("r1",), per_pair=5)
    data = write_rows(tmp_path / "jobs.csv", rows).read_bytes()
    done = run_cli("run", "-", "--report", str(tmp_path / "r.csv"), "--rate", "0", stdin=data, env={
        "OS_AUTH_URL": f"{handle.url}/v3", "OS_USERNAME": USER.name, "OS_PASSWORD": USER.password,
        "OS_USER_DOMAIN_NAME": USER.domain, "OS_PROJECT_ID": PROJECT, "OS_REGION_NAME": "r1"})
    assert done.returncode == 1, done.stderr
    report = read_report(tmp_path / "r.csv")
    assert {(r["project_id"], r["outcome"], r["error_code"]) for r in report} == {
        (PROJECT, "applied", ""), (P3, "failed", "pair_refused")}
    assert USER.password.encode() not in done.stderr and USER.password not in (tmp_path / "r.csv").read_text()


def test_auth_check_with_a_jobs_file_says_one_line_per_pair(sim_thread, tmp_path):
    handle = sim_thread(**MULTI)
    env = {"OS_AUTH_URL": f"{handle.url}/v3", "OS_USERNAME": USER.name, "OS_PASSWORD": USER.password,
           "OS_USER_DOMAIN_NAME": USER.domain, "OS_PROJECT_ID": PROJECT, "OS_REGION_NAME": "r1"}
    good = write_rows(tmp_path / "good.csv", rows_for(handle.sim, (PROJECT, P2), REGIONS, per_pair=2))
    done = run_cli("auth", "check", "--jobs", str(good), env=env)
    assert done.returncode == 0, done.stderr
    pairs = [line for line in done.stdout.splitlines() if line.startswith(("ok ", "FAILED "))]
    assert len(pairs) == 4
    assert all(line.startswith("ok ") and "-> 200" in line for line in pairs)
    assert f"ok project {P2} region r2: {handle.url}/regions/r2" in done.stdout

    bad = write_rows(tmp_path / "bad.csv", rows_for(handle.sim, (PROJECT, P3), ("r1", "r3"), per_pair=2))
    done = run_cli("auth", "check", "--jobs", str(bad), env=env)
    assert done.returncode == 2
    lines = {line.split(":")[0]: line for line in done.stdout.splitlines()}
    assert lines[f"ok project {PROJECT} region r1"]
    assert "HTTP 401" in lines[f"FAILED project {P3} region r1"]
    assert "no endpoint" in lines[f"FAILED project {PROJECT} region r3"]
    assert not [r for r in handle.sim.requests if r.method == "PUT"]
    assert USER.password not in done.stdout + done.stderr


@pytest.mark.parametrize("sim", [MULTI], indirect=True)
async def test_skip_unchanged_lists_each_pair_at_its_endpoint(sim, tmp_path):
    rows = rows_for(sim, (PROJECT, P2), REGIONS, per_pair=4)
    same = {sid for sid, *_ in rows[::2]}  # every other row asks for the name it has already
    rows = [(sid, p, g, sim.snapshots[sid]["name"] if sid in same else name) for sid, p, g, name in rows]
    result, report, _ = await run(tmp_path, rows, password_settings(sim), skip_unchanged=True)

    assert result.exit_code == 0
    assert {sid for sid, r in report.items() if r["outcome"] == "unchanged"} == same
    assert {sid for sid, r in report.items() if r["outcome"] == "applied"} == {s for s, *_ in rows} - same
    assert {r.snapshot_id for r in puts(sim)} == {s for s, *_ in rows} - same
    listings = {(region_of(r.path), r.project_id) for r in sim.requests
                if r.method == "GET" and r.query != "limit=1"}
    assert listings == {(g, p) for p in (PROJECT, P2) for g in REGIONS}


def test_a_queue_message_carries_the_region_to_the_job():
    from worker.jobs import Job, JobRules, Validator
    from worker.queue.streams import job_message, row_from_message

    sent = Job(7, "11111111-1111-4111-8111-111111111111", P2, "x", None, region="r2")
    row = row_from_message(job_message(sent, "jobs.csv"))
    job = Validator(JobRules()).validate(row)
    assert isinstance(job, Job) and (job.project_id, job.region) == (P2, "r2")
    bad = Validator(JobRules()).validate(row_from_message({**job_message(sent, "x"), "region": "r 2"}))
    assert bad.code == "invalid_region"
