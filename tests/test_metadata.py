"""Temporary AK/SK from the instance metadata service (`--auth-method metadata`, and `auto` when
nothing else is set), against the simulator's metadata service whose keys expire and whose
gateway refuses expired ones; a hostile metadata service; and clocks that disagree."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from helpers import FAST, PROJECT, TOKEN, read_report, relabel_targets, run_cli, write_jobs
from worker.api import metadata
from worker.api.auth import AuthError
from worker.api.client import HttpSettings, make_session
from worker.api.metadata import MetadataAuth, MetadataService
from worker.runner import JobSpec, run_job
from worker.settings import ConfigError, load_settings
from worker.sources import InputSpec
from worker.stop import Stop

DEAD = "http://127.0.0.1:9"  # nothing listens there


def metadata_env(url):
    return {"SNAPRELABEL_METADATA_URL": url, "SNAPRELABEL_PROJECT_ID": PROJECT}


def fetched(sim):
    return [r for r in sim.identity.metadata_requests if r.status == 200]


def test_a_job_longer_than_the_keys_life_applies_every_row_with_renewed_keys(sim_thread, tmp_path):
    sim = sim_thread(snapshots=60, metadata_key_lifetime=1.0)
    targets = relabel_targets(sim.sim.snapshots, 60)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    done = run_cli("run", str(jobs), "--report", str(tmp_path / "r.csv"), "--endpoint", sim.url,
                   "--auth-method", "metadata", "--rate", "20", env=metadata_env(sim.url))
    assert done.returncode == 0, done.stderr
    rows = read_report(tmp_path / "r.csv")
    assert [r["outcome"] for r in rows] == ["applied"] * 60
    assert {sid: s["name"] for sid, s in sim.sim.snapshots.items() if sid in targets} == targets
    assert len(fetched(sim.sim)) > 1  # 60 rows at 20/s outlive keys that live 1 s
    # Every PUT was signed with temporary keys and their security token.
    puts = [r for r in sim.sim.requests if r.method == "PUT"]
    assert puts and all(r.headers.get("authorization", "").startswith("SDK-HMAC-SHA256 Access=TMP")
                        for r in puts)


def test_auto_asks_the_metadata_service_only_when_nothing_else_is_set(sim_thread):
    sim = sim_thread(snapshots=5, metadata_key_lifetime=60.0)
    chosen = run_cli("auth", "check", "--endpoint", sim.url, env=metadata_env(sim.url))
    assert chosen.returncode == 0, chosen.stderr
    assert "method: temporary AK/SK from the metadata service" in chosen.stdout
    assert f"chosen because: nothing else is set and the metadata service {sim.url} answered" in chosen.stdout
    assert "keys: access key TMP" in chosen.stdout and "(fetched again before)" in chosen.stdout
    assert len(fetched(sim.sim)) == 2  # the probe's and the job's
    # With a token set, the metadata service is not even asked.
    sim.sim.identity.metadata_requests.clear()
    token = run_cli("auth", "check", "--endpoint", sim.url,
                    env={**metadata_env(sim.url), "SNAPRELABEL_TOKEN": TOKEN})
    assert token.returncode == 0, token.stderr
    assert "method: token" in token.stdout and sim.sim.identity.metadata_requests == []


def test_without_a_metadata_service_auto_says_no_credentials_in_one_line(tmp_path):
    done = run_cli("auth", "check", "--endpoint", DEAD, env=metadata_env(DEAD))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no credentials: set a token" in lines[0]
    assert "--auth-method metadata" in lines[0] and f"no metadata service answered at {DEAD}" in lines[0]


@pytest.mark.parametrize("broken", ["down", "503", "no-agency"])
def test_a_failing_metadata_service_is_one_line_and_exit_2(sim_thread, tmp_path, broken):
    sim = sim_thread(snapshots=5, metadata_key_lifetime=60.0)
    url = DEAD if broken == "down" else sim.url
    if broken == "503":
        sim.sim.identity.metadata_status = 503
    elif broken == "no-agency":
        sim.sim.identity.metadata_status = 404
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 2))
    done = run_cli("run", str(jobs), "--report", str(tmp_path / "r.csv"), "--endpoint", sim.url,
                   "--auth-method", "metadata", "--max-attempts", "2", "--backoff-base", "0.01",
                   env=metadata_env(url))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    expected = {"down": f"cannot reach the metadata service {DEAD}/",
                "503": "answered HTTP 503", "no-agency": "answered HTTP 404"}[broken]
    assert expected in lines[0]
    if broken == "no-agency":
        assert "agency" in lines[0].split("HTTP 404", 1)[1]
    assert not (tmp_path / "r.csv").exists() and not [r for r in sim.sim.requests if r.method == "PUT"]


GOOD = {"access": "HOSTILEAK01", "secret": "hostile-secret-9f2c", "securitytoken": "hostile-sts-token-41ab"}


def answer(kind):
    """The metadata service's answer for one kind of hostility."""
    future = "2099-01-01T00:00:00.000000Z"
    if kind == "not-json":
        return web.Response(text="<html>captive portal</html>")
    if kind == "no-credential":
        return web.json_response({"credentials": GOOD})
    if kind == "no-secret":
        return web.json_response({"credential": {**GOOD, "secret": "", "expires_at": future}})
    if kind == "bad-expiry":
        return web.json_response({"credential": {**GOOD, "expires_at": "tomorrow"}})
    if kind == "expired":
        return web.json_response({"credential": {**GOOD, "expires_at": "2001-01-01T00:00:00.000000Z"}})
    if kind == "redirect":
        raise web.HTTPFound("http://127.0.0.1:9/elsewhere")
    if kind == "token-with-newline":
        return web.json_response({"credential": {**GOOD, "securitytoken": "hostile-sts-token-41ab\r\nX-Evil: 1",
                                                 "expires_at": future}})
    if kind == "huge":
        return web.json_response({"credential": {**GOOD, "expires_at": future, "pad": "x" * (1 << 20)}})
    raise AssertionError(kind)


EXPECTED = {
    "not-json": "answered with something that is not JSON",
    "no-credential": "answered without a 'credential' object",
    "no-secret": "answered without secret in its credential",
    "bad-expiry": "answered with an expires_at that is not a time",
    "expired": "handed out keys already expired: they expired at 2001-01-01T00:00:00+00:00",
    "redirect": "answered HTTP 302 (a redirect): never followed",
    "huge": "answered with too large a body",
    "token-with-newline": "answered with a security token that cannot be sent",
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
async def test_a_hostile_metadata_answer_is_one_line_without_its_secrets(sim, tmp_path, kind):
    asked = []

    async def handle(request):
        asked.append(request.path)
        if request.method == "PUT":
            raise web.HTTPNotFound()  # no session tokens here
        return answer(kind)

    server = web.Server(handle)
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        settings = load_settings({"endpoint": sim.url, "project_id": PROJECT, "auth_method": "metadata",
                                  "metadata_url": f"http://127.0.0.1:{port}", "max_attempts": 2, **FAST})
        jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.snapshots, 2))
        with pytest.raises(ConfigError) as err:
            await run_job(settings, JobSpec(InputSpec(str(jobs)), str(tmp_path / "r.csv")), on_terminal=False)
    finally:
        await runner.cleanup()
    message = str(err.value)
    assert EXPECTED[kind] in message and "\n" not in message
    assert not any(secret in message for secret in (GOOD["secret"], GOOD["securitytoken"]))
    assert "/elsewhere" not in asked  # a redirect is never followed
    assert sim.requests == []  # nothing reached the API


@pytest.mark.parametrize("sim", [{"snapshots": 5, "metadata_key_lifetime": 30.0, "clock_offset": -600.0},
                                 {"snapshots": 5, "metadata_key_lifetime": 30.0, "clock_offset": 600.0}],
                         indirect=True)
async def test_the_keys_life_is_counted_by_the_metadata_services_clock(sim):
    """Ten minutes apart (the gateway allows 15): by this machine's clock the keys would look
    expired on arrival, or good for ten minutes after they expired."""
    session = make_session(HttpSettings())
    try:
        key = await MetadataService(session, sim.url).fetch()
    finally:
        await session.close()
    assert 0 < key.life_left <= 30.0
    assert key.expires <= time.monotonic() + 30.0


@pytest.mark.parametrize("sim", [{"snapshots": 5, "metadata_key_lifetime": 1.5}], indirect=True)
async def test_a_failing_service_keeps_valid_keys_in_use_and_stops_the_job_once_they_expire(sim, monkeypatch):
    monkeypatch.setattr(metadata, "EXPIRED_RETRY_PAUSES", (0.01,))
    stop = Stop()
    session = make_session(HttpSettings())
    auth = MetadataAuth(MetadataService(session, sim.url), PROJECT, stop)
    try:
        first = await auth.current()
        sim.identity.metadata_status = 503
        await asyncio.sleep(max(0.0, first.renew_at - time.monotonic()) + 0.05)
        assert await auth.current() is first  # renewal failed in the background: the keys stay
        await asyncio.sleep(0.1)
        assert not stop.is_set and await auth.current() is first
        await asyncio.sleep(max(0.0, first.expires - time.monotonic()) + 0.05)
        with pytest.raises(AuthError, match="expired at .* and no new ones came: the metadata service"):
            await auth.current()
    finally:
        await auth.close()
        await session.close()
    assert stop.is_set and stop.reason.startswith("credentials lost: the temporary keys")
    assert len([r for r in sim.identity.metadata_requests if r.status == 503]) >= 2


@pytest.mark.parametrize("sim", [{"snapshots": 200, "metadata_key_lifetime": 1.0}], indirect=True)
async def test_keys_expiring_with_the_service_down_stop_the_job_with_exit_3(sim, tmp_path, monkeypatch):
    monkeypatch.setattr(metadata, "EXPIRED_RETRY_PAUSES", (0.01,))

    async def break_after(n):
        while sum(sim.apply_counts.values()) < n:
            await asyncio.sleep(0.01)
        sim.identity.metadata_status = 500

    breaker = asyncio.create_task(break_after(10))
    settings = load_settings({"endpoint": sim.url, "project_id": PROJECT, "auth_method": "metadata",
                              "metadata_url": sim.url, "rate": 40, "concurrency": 4, **FAST})
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.snapshots, 200))
    result = await run_job(settings, JobSpec(InputSpec(str(jobs)), str(tmp_path / "r.csv")), on_terminal=False)
    await breaker
    assert result.exit_code == 3 and result.summary.stopped.startswith("credentials lost")
    rows = read_report(tmp_path / "r.csv")
    assert len(rows) == 200 and "interrupted" in {r["outcome"] for r in rows}
    assert {r["outcome"] for r in rows} <= {"applied", "failed", "interrupted", "not_attempted"}
    applied = {r["snapshot_id"] for r in rows if r["outcome"] == "applied"}
    assert applied == set(sim.apply_counts)  # every change the API made is in the report


@pytest.mark.parametrize("sim", [{"snapshots": 5, "metadata_key_lifetime": 60.0}], indirect=True)
async def test_many_senders_waiting_for_keys_cause_one_fetch(sim):
    session = make_session(HttpSettings())
    auth = MetadataAuth(MetadataService(session, sim.url), PROJECT, Stop())
    try:
        keys = await asyncio.gather(*(auth.current() for _ in range(50)))
        # A 401 on 20 requests sent before the renewal: one more fetch, and all retry.
        sent_at = time.monotonic()
        retry = await asyncio.gather(*(auth.refresh_after_401(sent_at) for _ in range(20)))
    finally:
        await auth.close()
        await session.close()
    assert len({k.access_key for k in keys}) == 1 and all(retry)
    assert len(fetched(sim)) == 2
