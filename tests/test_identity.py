"""The Keystone client against the simulator's token service, over real sockets: single-flight
renewal, renewal ahead of expiry, a refused password never sent twice; and the simulator's own
identity rules (Keystone errors, the catalog, AK/SK skew and lockout)."""

from __future__ import annotations

import asyncio
import time

import pytest

from helpers import PROJECT, TOKEN, sim_config
from worker.api.aksk import AccessKey, sign
from worker.api.auth import AuthError
from worker.api.client import HttpSettings, make_session
from worker.api.keystone import KeystoneAuth, PasswordLogin, fetch_catalog, request_token
from worker.simulator import Simulator
from worker.simulator.identity import AccessKeyPair, User
from worker.stop import Stop

USER = User("alice", "alice-password-8d1", domain="Lab", domain_id="lab-domain")
KEY = AccessKeyPair("SIMAKID0001", "sim-secret-key-0001")


@pytest.fixture
async def idsim():
    async with Simulator(sim_config(snapshots=5, users=(USER,), access_keys=(KEY,))) as s:
        yield s


@pytest.fixture
async def session():
    s = make_session(HttpSettings())
    yield s
    await s.close()


def login(sim, password=USER.password, **overrides):
    values = {"auth_url": f"{sim.url}/v3", "password": password, "username": USER.name,
              "user_domain_name": USER.domain, "project_id": PROJECT, **overrides}
    return PasswordLogin(**values)


def issued(sim):
    return [r for r in sim.identity.token_requests if r.status == 201]


async def test_fifty_waiting_senders_cause_one_token_request(idsim, session):
    auth = KeystoneAuth(session, login(idsim), Stop())
    headers = await asyncio.gather(*(auth.headers("PUT", "u", b"") for _ in range(50)))
    assert len({h["X-Auth-Token"] for h in headers}) == 1
    assert len(idsim.identity.token_requests) == 1 and auth.token_requests == 1


async def test_a_token_is_renewed_ahead_of_expiry_while_the_old_one_is_still_used(idsim, session):
    idsim.identity.token_lifetime = 2.0
    auth = KeystoneAuth(session, login(idsim), Stop())
    first = await auth.current()
    assert first.lifetime == pytest.approx(2.0, abs=0.01) and first.project_id == PROJECT
    await asyncio.sleep(max(0.0, first.renew_at - time.monotonic()) + 0.05)
    assert (await auth.current()) is first  # no sender waits for the renewal...
    for _ in range(100):
        if auth.token is not first:
            break
        await asyncio.sleep(0.02)
    assert auth.token is not first and len(issued(idsim)) == 2  # ...which happened once


async def test_a_refused_password_is_never_sent_twice(idsim, session):
    stop = Stop()
    auth = KeystoneAuth(session, login(idsim, password="wrong-password"), stop)
    with pytest.raises(AuthError) as err:
        await auth.current()
    assert not err.value.transient and "HTTP 401" in str(err.value) and "wrong-password" not in str(err.value)
    with pytest.raises(AuthError):
        await auth.headers("PUT", "u", b"")
    assert await auth.refresh_after_401(time.monotonic()) is False
    assert [r.status for r in idsim.identity.token_requests] == [401] and stop.is_set


async def test_revoked_tokens_are_renewed_once_for_all_the_401s(idsim, session):
    auth = KeystoneAuth(session, login(idsim), Stop())
    old = await auth.current()
    idsim.identity.revoke_all()
    sent_at = time.monotonic()
    assert all(await asyncio.gather(*(auth.refresh_after_401(sent_at) for _ in range(20))))
    assert auth.token.value != old.value and len(issued(idsim)) == 2
    # A 401 for a request sent before that renewal just retries.
    assert await auth.refresh_after_401(sent_at) is True and len(issued(idsim)) == 2


async def test_an_unreachable_identity_service_is_transient(session):
    with pytest.raises(AuthError) as err:
        await request_token(session, PasswordLogin("http://127.0.0.1:9/v3", "pw", "u"))
    assert err.value.transient
    assert "cannot reach the identity service http://127.0.0.1:9/v3/auth/tokens" in str(err.value)


@pytest.mark.parametrize("overrides", [
    {"user_domain_name": "Default"},  # right name, wrong domain
    {"username": "mallory"},
    {"project_id": "f" * 32},  # not her project
    {"project_id": None, "project_name": "sim-project", "project_domain_name": "Other"},
])
async def test_keystone_refuses_what_does_not_match(idsim, session, overrides):
    with pytest.raises(AuthError, match="HTTP 401"):
        await request_token(session, login(idsim, **overrides))


async def test_keystone_accepts_user_id_and_project_name(idsim, session):
    token = await request_token(session, login(idsim, username=None, user_id=USER.id, project_id=None,
                                               project_name="sim-project"))
    assert token.project_id == PROJECT
    types = {s["type"] for s in token.catalog}
    assert {"volumev3", "volumev2", "evs", "identity"} <= types
    urls = [e["url"] for s in token.catalog for e in s["endpoints"]]
    assert f"{idsim.url}/v3/{PROJECT}" in urls  # the catalog points at the simulator itself


async def test_a_static_token_gets_the_catalog(idsim, session):
    catalog = await fetch_catalog(session, idsim.url, TOKEN)
    assert any(s["type"] == "volumev3" for s in catalog)
    with pytest.raises(AuthError, match="refused the token: HTTP 401"):
        await fetch_catalog(session, idsim.url, "not-a-token")


async def test_malformed_token_requests_are_400(idsim, session):
    async with session.post(f"{idsim.url}/v3/auth/tokens", data=b"{}") as resp:
        assert resp.status == 400 and "X-Subject-Token" not in resp.headers


async def signed_get(session, sim, key, when):
    url = f"{sim.url}/v2/{PROJECT}/snapshots/detail?limit=1"
    headers = sign(AccessKey(key.access_key, key.secret_key, PROJECT), "GET", url, {}, b"", when)
    async with session.get(url, headers=headers) as resp:
        return resp.status, (await resp.json()).get("error_code")


async def test_aksk_dates_more_than_15_minutes_off_are_refused(idsim, session):
    now = time.time()
    assert await signed_get(session, idsim, KEY, now - 14 * 60) == (200, None)
    assert await signed_get(session, idsim, KEY, now + 16 * 60) == (401, "APIGW.0303")
    assert await signed_get(session, idsim, KEY, now - 16 * 60) == (401, "APIGW.0303")


async def test_five_bad_signatures_in_a_row_lock_the_key(idsim, session):
    wrong = AccessKeyPair(KEY.access_key, "not-the-secret")
    assert [await signed_get(session, idsim, wrong, time.time()) for _ in range(4)] == [(401, "APIGW.0301")] * 4
    assert await signed_get(session, idsim, KEY, time.time()) == (200, None)  # the run is broken
    for _ in range(5):
        await signed_get(session, idsim, wrong, time.time())
    assert await signed_get(session, idsim, KEY, time.time()) == (401, "APIGW.0301")  # locked
