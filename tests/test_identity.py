"""The Keystone client against the simulator's token service, over real sockets: single-flight
renewal, renewal ahead of expiry by the token's own life, a refused password or application
credential never sent twice; and the simulator's own identity rules (Keystone errors, the
catalog, roles, AK/SK skew and lockout)."""

from __future__ import annotations

import asyncio
import time

import pytest

from helpers import PROJECT, TOKEN, sim_config
from worker.api.aksk import AccessKey, sign
from worker.api.auth import AuthError
from worker.api.client import HttpSettings, make_session
from worker.api.keystone import (
    ApplicationCredentialLogin,
    KeystoneAuth,
    PasswordLogin,
    fetch_catalog,
    request_token,
)
from worker.simulator import Simulator
from worker.simulator.identity import AccessKeyPair, AppCredential, User
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


# -- token life by the server's own clock ---------------------------------------------------------

@pytest.mark.parametrize("sim", [{"snapshots": 5, "users": (USER,), "token_lifetime": 60.0,
                                  "truncate_issued_at": True}], indirect=True)
async def test_a_truncated_issued_at_never_makes_the_client_count_on_a_dead_token(sim, session):
    # Keystone cuts issued_at to the second: a token asked for at 08:11:30.788 with a 20-s life
    # expires at 08:11:50.000. Counted from the request, up to 1 s of life would be imagined.
    for _ in range(5):
        token = await request_token(session, login(sim))
        server_end = sim.identity.issued[token.value].expiry
        assert token.lifetime == 60.0
        assert token.end <= server_end  # never later than the server's expiry
        assert token.renew_at == token.end - 15.0  # renewed at 3/4 of the token's own life


@pytest.mark.parametrize("offset", [-7200.0, 7200.0])
async def test_without_issued_at_the_life_comes_from_the_servers_date_not_this_clock(session, offset):
    # The server's clock two hours off this machine's: counted by this clock, its token would be
    # already expired (refused, then a flood of logins) or live for two hours past its expiry.
    config = sim_config(snapshots=5, users=(USER,), token_lifetime=60.0, clock_offset=offset,
                        send_issued_at=False)
    async with Simulator(config) as sim:
        auth = KeystoneAuth(session, login(sim), Stop())
        token = await auth.current()
        assert token.end <= sim.identity.issued[token.value].expiry
        assert token.renew_at > time.monotonic() + 30  # and not absurdly early either
        assert token.clock_skew == pytest.approx(offset, abs=5)
        assert auth.token_requests == 1


# -- application credentials -------------------------------------------------------------------

APP = AppCredential("5f0e6a1c2b9d4e3fa7c8b1d2e3f4a5b6", "app-secret-5b1e93", "nightly", USER)
READER = User("rita", "rita-password-3c1", roles=("reader",))


@pytest.fixture
async def appsim():
    async with Simulator(sim_config(snapshots=5, users=(USER, READER), app_credentials=(APP,))) as s:
        yield s


def app_login(sim, **overrides):
    values = {"auth_url": sim.url, "secret": APP.secret, "credential_id": APP.id, **overrides}
    return ApplicationCredentialLogin(**values)


@pytest.mark.parametrize("overrides", [
    {},
    {"credential_id": None, "credential_name": "nightly", "username": USER.name,
     "user_domain_name": USER.domain},
    {"credential_id": None, "credential_name": "nightly", "user_id": USER.id},
])
async def test_an_application_credential_gets_a_token_for_its_own_project(appsim, session, overrides):
    auth = KeystoneAuth(session, app_login(appsim, **overrides), Stop())
    token = await auth.current()
    assert token.project_id == PROJECT and token.roles == ("member", "reader")
    assert auth.name == "application_credential"
    assert [(r.status, r.method) for r in appsim.identity.token_requests] == [(201, "application_credential")]


@pytest.mark.parametrize("overrides", [
    {"secret": "not-the-secret"},
    {"credential_id": "0" * 32},
    {"credential_id": None, "credential_name": "nightly", "username": READER.name,
     "user_domain_name": "Default"},  # right name, another user's
])
async def test_a_refused_application_credential_is_never_sent_twice(appsim, session, overrides):
    stop = Stop()
    auth = KeystoneAuth(session, app_login(appsim, **overrides), stop)
    with pytest.raises(AuthError) as err:
        await auth.current()
    assert "HTTP 401" in str(err.value) and "application credential" in str(err.value)
    assert APP.secret not in str(err.value) and "not-the-secret" not in str(err.value)
    assert await auth.refresh_after_401(time.monotonic()) is False and stop.is_set
    assert [r.status for r in appsim.identity.token_requests] == [401]


async def test_the_simulator_refuses_a_scope_with_an_application_credential(appsim, session):
    body = app_login(appsim).request_body()
    body["auth"]["scope"] = {"project": {"id": PROJECT}}
    async with session.post(f"{appsim.url}/v3/auth/tokens", json=body) as resp:
        assert resp.status == 401 and "X-Subject-Token" not in resp.headers


async def test_a_reader_token_may_list_but_its_put_is_403_as_cinder_answers(appsim, session):
    token = await request_token(session, login(appsim, username=READER.name, password=READER.password,
                                               user_domain_name="Default"))
    assert token.roles == ("reader",)
    url = f"{appsim.url}/v2/{PROJECT}/snapshots"
    headers = {"X-Auth-Token": token.value}
    async with session.get(f"{url}/detail?limit=1", headers=headers) as resp:
        assert resp.status == 200
        sid = (await resp.json())["snapshots"][0]["id"]
    async with session.put(f"{url}/{sid}", json={"snapshot": {"name": "x"}}, headers=headers) as resp:
        assert resp.status == 403
        assert "volume:update_snapshot" in (await resp.json())["forbidden"]["message"]
