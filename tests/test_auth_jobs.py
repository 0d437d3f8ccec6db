"""Whole jobs with every way of authenticating, against the simulator's real protocol: tokens
that expire or are revoked mid-job, a wrong password, AK/SK signing end to end and its refusal,
the service catalog; and no secret in any byte the tool writes."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from helpers import FAST, PROJECT, TOKEN, read_report, relabel_targets, run_cli, write_jobs
from worker.api.client import HttpSettings, SnapshotApi, make_session
from worker.api.keystone import KeystoneAuth, PasswordLogin
from worker.live import LiveState
from worker.rate import RateLimiter
from worker.retry import Retrier, RetryPolicy
from worker.runner import JobSpec, run_job
from worker.settings import ConfigError, load_settings
from worker.simulator.identity import AccessKeyPair, AppCredential, CatalogEntry, User
from worker.sources import InputSpec
from worker.stop import Stop

USER = User("bob", "bob-password-5c2e9", domain="Lab", domain_id="lab-id")
KEY = AccessKeyPair("SIMAKBOB000000000001", "bob-secret-key-0a93f71", "bob-security-token-77d1e0")
APP = AppCredential("5f0e6a1c2b9d4e3fa7c8b1d2e3f4a5b6", "bob-app-secret-93c4e1d", "nightly", USER)


def password_settings(sim, **overrides):
    return {"auth_url": f"{sim.url}/v3", "username": USER.name, "password": USER.password,
            "user_domain_name": USER.domain, "project_id": PROJECT, "region": "sim-1", **overrides}


def aksk_settings(sim, **overrides):
    return {"endpoint": sim.url, "access_key": KEY.access_key, "secret_key": KEY.secret_key,
            "security_token": KEY.security_token, "project_id": PROJECT, **overrides}


async def run(sim, tmp_path, targets, settings, **overrides):
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    report = tmp_path / "report.csv"
    values = {"rate": 0, "concurrency": 16, **FAST, **settings, **overrides}
    result = await run_job(load_settings(values), JobSpec(InputSpec(str(jobs)), str(report)),
                           on_terminal=False)
    return result, read_report(report)


def issued(sim):
    return [r for r in sim.identity.token_requests if r.status == 201]


def puts(sim):
    return [r for r in sim.requests if r.method == "PUT"]


@pytest.mark.parametrize("sim", [{"snapshots": 300, "users": (USER,), "token_lifetime": 1.5}], indirect=True)
async def test_tokens_expiring_mid_job_are_renewed_once_per_expiry(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 300)
    started = time.monotonic()
    result, rows = await run(sim, tmp_path, targets, password_settings(sim), rate=100)
    elapsed = time.monotonic() - started

    assert result.exit_code == 0 and {r["outcome"] for r in rows} == {"applied"}
    assert not [r for r in rows if r["http_status"] == "401"]
    assert all(sim.snapshots[sid]["name"] == name for sid, name in targets.items())
    # Renewed at three quarters of each 1.5 s life: one token request per expiry, not one per
    # sender (16 here).
    tokens = len(issued(sim))
    assert 3 <= tokens <= elapsed / (0.75 * 1.5) + 2
    assert len(sim.identity.token_requests) == tokens  # and none refused


@pytest.mark.parametrize("sim", [{"snapshots": 300, "users": (USER,)}], indirect=True)
async def test_tokens_revoked_mid_job_cost_one_renewal_and_no_failed_row(sim, tmp_path):
    async def revoke_after(n):
        while sum(sim.apply_counts.values()) < n:
            await asyncio.sleep(0.01)
        sim.identity.revoke_all()

    revoker = asyncio.create_task(revoke_after(100))
    result, rows = await run(sim, tmp_path, relabel_targets(sim.snapshots, 300),
                             password_settings(sim), rate=100)
    await revoker

    refused = [r for r in puts(sim) if r.status == 401]
    assert refused, "no request met the revoked token"
    assert {r["outcome"] for r in rows} == {"applied"} and result.exit_code == 0
    assert len(issued(sim)) == 2  # the first token, and one renewal for all the 401s
    retried = {r.snapshot_id for r in refused}
    assert {r["attempts"] for r in rows if r["snapshot_id"] in retried} == {"2"}
    # Each resend after the renewal is a retry like any other (it once counted as none).
    assert (result.summary.requests, result.summary.retries) == (len(puts(sim)), len(refused))


@pytest.mark.parametrize("sim", [{"snapshots": 1500, "users": (USER,)}], indirect=True)
async def test_the_live_listing_renews_a_revoked_token_as_a_put_does(sim):
    # --skip-unchanged's listing once had a retry loop of its own, without the 401 renewal.
    async with make_session(HttpSettings()) as session:
        stop = Stop()
        auth = KeystoneAuth(session, PasswordLogin(f"{sim.url}/v3", USER.password, USER.name,
                                                   user_domain_name=USER.domain,
                                                   project_id=PROJECT), stop)
        await auth.current()
        sim.identity.revoke_all()
        api = SnapshotApi(session, sim.url, "v2", auth)
        live = LiveState(api, Retrier(RetryPolicy(base=0.001), RateLimiter(0), stop, auth))
        table = await live.table(PROJECT)
    assert len(table) == 1500 and not stop.is_set
    assert len(issued(sim)) == 2  # the first token and one renewal


@pytest.mark.parametrize("sim", [{"snapshots": 300, "users": (USER,), "token_lifetime": 1.0}], indirect=True)
async def test_a_password_changed_mid_job_stops_it_after_one_refused_login(sim, tmp_path):
    async def change_after(n):
        while sum(sim.apply_counts.values()) < n:
            await asyncio.sleep(0.01)
        sim.identity.users = (User(USER.name, "changed-by-an-admin", USER.domain, USER.domain_id),)

    changer = asyncio.create_task(change_after(20))
    result, rows = await run(sim, tmp_path, relabel_targets(sim.snapshots, 300),
                             password_settings(sim), rate=50)
    await changer

    # Identity services lock accounts after a few failed logins: the old password is sent once.
    assert [r.status for r in sim.identity.token_requests].count(401) == 1
    assert result.summary.stopped.startswith("credentials refused") and result.exit_code == 3
    outcomes = {r["outcome"] for r in rows}
    assert "interrupted" in outcomes and outcomes <= {"applied", "failed", "interrupted"}
    assert len(rows) == 300


def test_a_wrong_password_is_one_line_and_exit_2_before_anything_is_sent(sim_thread, tmp_path):
    sim = sim_thread(snapshots=5, users=(USER,))
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 3))
    done = run_cli("run", str(jobs), "--report", str(tmp_path / "r.csv"), env={
        "OS_AUTH_URL": f"{sim.url}/v3", "OS_USERNAME": USER.name, "OS_PASSWORD": "not-bobs-password",
        "OS_USER_DOMAIN_NAME": USER.domain, "OS_PROJECT_ID": PROJECT, "OS_REGION_NAME": "sim-1"})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused user 'bob' (domain Lab)" in lines[0] and "HTTP 401" in lines[0]
    assert "not-bobs-password" not in done.stderr + done.stdout
    assert sim.sim.requests == []  # not one API request
    assert [r.status for r in sim.sim.identity.token_requests] == [401]  # one login, not retried
    assert not (tmp_path / "r.csv").exists()


def test_an_aksk_job_end_to_end(sim_thread, tmp_path):
    sim = sim_thread(snapshots=60, access_keys=(KEY,))
    targets = relabel_targets(sim.sim.snapshots, 50)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    done = run_cli("run", str(jobs), "--endpoint", sim.url, "--report", str(tmp_path / "r.csv"),
                   "--rate", "0", env={"HUAWEICLOUD_SDK_AK": KEY.access_key,
                                       "HUAWEICLOUD_SDK_SK": KEY.secret_key,
                                       "HUAWEICLOUD_SDK_SECURITY_TOKEN": KEY.security_token,
                                       "HUAWEICLOUD_SDK_PROJECT_ID": PROJECT})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[0])["auth"] == "aksk"
    assert {r["outcome"] for r in read_report(tmp_path / "r.csv")} == {"applied"}
    assert all(sim.sim.snapshots[sid]["name"] == name for sid, name in targets.items())
    sent = puts(sim.sim)
    assert len(sent) == 50 and {r.status for r in sent} == {200}
    for record in sent:
        assert record.headers["authorization"].startswith(f"SDK-HMAC-SHA256 Access={KEY.access_key}, ")
        assert record.headers["x-project-id"] == PROJECT and "x-sdk-date" in record.headers
        assert record.headers["x-security-token"] == "***"  # masked in the simulator's log
    assert sum(sim.sim.identity.signature_failures.values()) == 0


@pytest.mark.parametrize("sim", [{"snapshots": 300, "access_keys": (KEY,)}], indirect=True)
async def test_an_aksk_refusal_mid_job_stops_it_without_retrying(sim, tmp_path):
    async def rotate_after(n):
        while sum(sim.apply_counts.values()) < n:
            await asyncio.sleep(0.01)
        sim.identity.keys[KEY.access_key] = AccessKeyPair(KEY.access_key, "rotated-secret", KEY.security_token)

    rotator = asyncio.create_task(rotate_after(40))
    result, rows = await run(sim, tmp_path, relabel_targets(sim.snapshots, 300),
                             aksk_settings(sim), rate=100, concurrency=4)
    await rotator

    by_outcome = {o: [r for r in rows if r["outcome"] == o] for o in ("applied", "failed", "interrupted")}
    assert len(rows) == 300 and sum(map(len, by_outcome.values())) == 300
    assert 1 <= len(by_outcome["failed"]) <= 4  # only what was in flight
    assert {(r["http_status"], r["error_code"]) for r in by_outcome["failed"]} == {("401", "APIGW.0301")}
    assert len(by_outcome["interrupted"]) > 200
    refused = [r for r in puts(sim) if r.status == 401]
    assert len(refused) == len(by_outcome["failed"])  # never retried
    assert not sim.identity.locked_until  # stopped well before the gateway's lockout
    assert result.summary.stopped.startswith("credentials refused") and result.exit_code == 3


@pytest.mark.parametrize("sim", [{"snapshots": 5, "access_keys": (KEY,), "clock_offset": 20 * 60}], indirect=True)
async def test_a_clock_20_minutes_off_fails_before_any_put(sim, tmp_path):
    with pytest.raises(ConfigError) as err:
        await run(sim, tmp_path, relabel_targets(sim.snapshots, 3), aksk_settings(sim))
    assert "HTTP 401 APIGW.0303" in str(err.value) and "clock" in str(err.value)
    assert [(r.method, r.status) for r in sim.requests] == [("GET", 401)]


@pytest.mark.parametrize("region, interface, family, host", [
    ("sim-1", "public", "cinder-v3", "127.0.0.1"),
    ("sim-1", "internal", "cinder-v3", "localhost"),
    ("sim-2", "public", "v2", "127.0.0.1"),  # no volumev3 there: volumev2
])
@pytest.mark.parametrize("sim", [{"snapshots": 10, "users": (USER,)}], indirect=True)
async def test_the_catalog_endpoint_follows_region_and_interface(sim, tmp_path, region, interface, family, host):
    port = sim.url.rsplit(":", 1)[1]
    dead = "http://127.0.0.1:9"
    sim.identity.catalog = (
        CatalogEntry("volumev3", "public", "sim-1", f"{sim.url}/v3/{{project_id}}"),
        CatalogEntry("volumev3", "internal", "sim-1", f"http://localhost:{port}/v3/{{project_id}}"),
        CatalogEntry("volumev3", "admin", "sim-1", f"{dead}/v3/{{project_id}}"),
        CatalogEntry("volumev2", "public", "sim-2", f"{sim.url}/v2/{{project_id}}"),
        CatalogEntry("volumev2", "public", "sim-3", f"{dead}/v2/{{project_id}}"),
    )
    targets = relabel_targets(sim.snapshots, 3)
    result, rows = await run(sim, tmp_path, targets,
                             password_settings(sim, region=region, interface=interface))
    assert {r["outcome"] for r in rows} == {"applied"}
    assert {(r.family, r.headers["host"].rsplit(":", 1)[0]) for r in sim.requests} == {(family, host)}


@pytest.mark.parametrize("sim", [{"snapshots": 10, "users": (USER,)}], indirect=True)
async def test_a_dead_catalog_endpoint_and_a_missing_region_fail_before_any_put(sim, tmp_path):
    with pytest.raises(ConfigError, match="no endpoint for .* region sim-9; it offers volumev3 public sim-1"):
        await run(sim, tmp_path, relabel_targets(sim.snapshots, 2), password_settings(sim, region="sim-9"))
    with pytest.raises(ConfigError, match="credential check GET http://volume.sim-2.sim.invalid/.* failed"):
        await run(sim, tmp_path, relabel_targets(sim.snapshots, 2),
                  password_settings(sim, region="sim-2", max_attempts=1))
    assert sim.requests == []


def method_envs(sim):
    """Every way to authenticate, as environment variables; and the secrets each one holds."""
    catalog = {"OS_AUTH_URL": sim.url, "OS_REGION_NAME": "sim-1", "OS_PROJECT_ID": PROJECT}
    return {
        "token": ({"SNAPRELABEL_TOKEN": TOKEN, "SNAPRELABEL_ENDPOINT": sim.url,
                   "SNAPRELABEL_PROJECT_ID": PROJECT}, [TOKEN]),
        "token-catalog": ({"OS_TOKEN": TOKEN, **catalog}, [TOKEN]),
        "password": ({"OS_USERNAME": USER.name, "OS_PASSWORD": USER.password,
                      "OS_USER_DOMAIN_NAME": USER.domain, **catalog}, [USER.password]),
        "aksk": ({"HUAWEICLOUD_SDK_AK": KEY.access_key, "HUAWEICLOUD_SDK_SK": KEY.secret_key,
                  "HUAWEICLOUD_SDK_SECURITY_TOKEN": KEY.security_token,
                  "HUAWEICLOUD_SDK_PROJECT_ID": PROJECT, "SNAPRELABEL_ENDPOINT": sim.url},
                 [KEY.secret_key, KEY.security_token]),
        # The keys the metadata service handed out are added once the job has run.
        "metadata": ({"SNAPRELABEL_AUTH_METHOD": "metadata", "SNAPRELABEL_METADATA_URL": sim.url,
                      "SNAPRELABEL_ENDPOINT": sim.url, "SNAPRELABEL_PROJECT_ID": PROJECT}, []),
        "appcred": ({"OS_AUTH_TYPE": "v3applicationcredential", "OS_AUTH_URL": sim.url,
                     "OS_REGION_NAME": "sim-1", "OS_APPLICATION_CREDENTIAL_ID": APP.id,
                     "OS_APPLICATION_CREDENTIAL_SECRET": APP.secret}, [APP.secret]),
    }


@pytest.mark.parametrize("method", ["token", "token-catalog", "password", "aksk", "metadata", "appcred"])
def test_no_secret_in_any_output_at_debug_level(sim_thread, tmp_path, method):
    sim = sim_thread(snapshots=40, users=(USER,), access_keys=(KEY,), app_credentials=(APP,),
                     token_lifetime=1.0, metadata_key_lifetime=1.0, faults=["503:0.1", "500:0.05"])
    env, secrets = method_envs(sim)[method]
    ghost = "00000000-0000-4000-8000-000000000000"
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 30),
                      [["bad-id", "x"], [ghost, "y"]])
    report = tmp_path / "r.jsonl"
    done = run_cli("run", str(jobs), "--report", str(report), "--report-format", "jsonl",
                   "--log-level", "debug", "--rate", "20", "--backoff-base", "0.01", env=env)
    check = run_cli("auth", "check", "--log-level", "debug", env=env)
    assert done.returncode == 1, done.stderr  # the two bad rows
    assert check.returncode == 0, check.stderr
    shown = {"aksk": "AK/SK", "metadata": "temporary AK/SK from the metadata service",
             "appcred": "application credential"}.get(method, method.split("-")[0])
    assert f"method: {shown}" in check.stdout
    assert "endpoint: " in check.stdout and "checked: GET " in check.stdout
    applied = [json.loads(line) for line in report.read_text().splitlines()]
    assert sum(r["outcome"] == "applied" for r in applied) == 30
    if method in ("password", "appcred"):
        secrets += [r.token for r in sim.sim.identity.token_requests if r.token]
        assert len(secrets) >= 3  # tokens expired and were renewed during the job
    if method == "metadata":
        handed_out = [r for r in sim.sim.identity.metadata_requests if r.status == 200]
        secrets += [sim.sim.identity.keys[r.user].secret_key for r in handed_out]
        secrets += [r.token for r in handed_out]
        assert len(handed_out) >= 3  # keys expired and were renewed during the job
    outputs = {"run stdout": done.stdout, "run stderr": done.stderr, "check stdout": check.stdout,
               "check stderr": check.stderr, "report": report.read_text(),
               "manifest": (tmp_path / "r.jsonl.manifest.json").read_text()}
    assert '"event": "retry"' in done.stdout  # debug lines were written
    for name, text in outputs.items():
        for secret in secrets:
            assert secret not in text, f"a secret in the {name}"
