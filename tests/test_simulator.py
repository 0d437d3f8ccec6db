"""The bundled simulator, spoken to over real sockets with a real HTTP client."""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from worker.simulator import Fault, Simulator, SimulatorConfig, run_in_thread
from worker.simulator.cli import add_arguments, config_from_args

ROOT = Path(__file__).resolve().parents[1]
TOKEN = {"X-Auth-Token": "sim-token"}
FAMILIES = {
    "v2": "/v2/{project}/snapshots",
    "evs": "/v2/{project}/cloudsnapshots",
    "cinder-v3": "/v3/{project}/snapshots",
}
SEED_FIELDS = {"id", "status", "name", "description", "created_at", "updated_at", "metadata", "volume_id", "size"}
REQ_ID = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture
async def sim():
    async with Simulator(SimulatorConfig(snapshots=50, seed=7)) as s:
        yield s


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(headers=TOKEN) as session:
        yield session


def url(sim: Simulator, sid: str = "", family: str = "v2", project: str | None = None) -> str:
    base = FAMILIES[family].format(project=project or sim.config.project_id)
    return f"{sim.url}{base}/{sid}" if sid else f"{sim.url}{base}"


def first_id(sim: Simulator) -> str:
    return next(iter(sim.snapshots))


# -- PUT: the seed's semantics ------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(FAMILIES))
async def test_put_updates_the_snapshot_on_every_family(sim, http, family):
    sid = first_id(sim)
    before = dict(sim.snapshots[sid])
    async with http.put(url(sim, sid, family), json={"snapshot": {"name": "web-01", "description": "旧盘"}}) as r:
        assert r.status == 200
        assert REQ_ID.match(r.headers["X-Openstack-Request-Id"])
        doc = await r.json()
    snap = doc["snapshot"]
    assert set(snap) == SEED_FIELDS
    assert (snap["id"], snap["name"], snap["description"]) == (sid, "web-01", "旧盘")
    assert snap["updated_at"] != before["updated_at"] and snap["created_at"] == before["created_at"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$", snap["updated_at"])
    assert sim.snapshots[sid]["name"] == "web-01" and sim.snapshots[sid]["size"] == before["size"]
    async with http.get(url(sim, sid, family)) as r:
        assert r.status == 200
        assert (await r.json())["snapshot"]["name"] == "web-01"
    assert sim.put_counts[sid] == 1 and sim.apply_counts[sid] == 1
    assert sim.requests[0].family == family


async def test_name_wins_over_display_name_and_aliases_apply_alone(sim, http):
    sid = first_id(sim)
    body = {"snapshot": {"display_name": "loser", "name": "winner", "display_description": "via alias"}}
    async with http.put(url(sim, sid), json=body) as r:
        snap = (await r.json())["snapshot"]
    assert (snap["name"], snap["description"]) == ("winner", "via alias")
    async with http.put(url(sim, sid), json={"snapshot": {"display_name": "alias only"}}) as r:
        assert (await r.json())["snapshot"]["name"] == "alias only"
    assert sim.snapshots[sid]["description"] == "via alias"  # untouched by the second PUT


@pytest.mark.parametrize(
    "field, value, status",
    [
        ("name", "中" * 85, 200),  # 255 bytes
        ("name", "中" * 86, 400),  # 258 bytes, only 86 characters
        ("description", "a" * 255, 200),
        ("display_description", "a" * 254 + "é", 400),  # 256 bytes
    ],
)
async def test_fields_are_limited_to_255_utf8_bytes(sim, http, field, value, status):
    sid = first_id(sim)
    before = dict(sim.snapshots[sid])
    async with http.put(url(sim, sid), json={"snapshot": {field: value}}) as r:
        assert r.status == status
        doc = await r.json()
    if status == 200:
        target = field.removeprefix("display_")
        assert sim.snapshots[sid][target] == value
    else:
        assert doc["badRequest"]["code"] == 400
        assert doc["badRequest"]["message"].startswith(f"Invalid input for field/attribute {field}. Value: ")
        assert doc["badRequest"]["message"].endswith("is too long")
        assert sim.snapshots[sid] == before


@pytest.mark.parametrize(
    "raw, message",
    [
        (b'{"snapshot": {}}', "is not valid under any of the given schemas"),
        (b'{"snapshot": {"name": "x", "foo": 1}}', "Additional properties are not allowed ('foo' was unexpected)"),
        (b'{"snapshot": {"name": "x"}, "bar": 1}', "Additional properties are not allowed ('bar' was unexpected)"),
        (b'{"snapshot": {"name": "x"', "Malformed request body"),
        (b'{"snapshot": {"name": 5}}', "5 is not of type 'string'"),
        (b'{"snapshot": {"description": null}}', "None is not of type 'string'"),
        (b'{"snapshot": "x"}', "'x' is not of type 'object'"),
        (b'{"name": "x"}', "Additional properties are not allowed ('name' was unexpected)"),
        (b"{}", "'snapshot' is a required property"),
        (b"", "'snapshot' is a required property"),
    ],
)
async def test_bad_bodies_get_cinder_bad_request(sim, http, raw, message):
    sid = first_id(sim)
    before = dict(sim.snapshots[sid])
    async with http.put(url(sim, sid), data=raw, headers={"Content-Type": "application/json"}) as r:
        assert r.status == 400
        doc = await r.json()
    assert set(doc) == {"badRequest"} and doc["badRequest"]["code"] == 400
    assert message in doc["badRequest"]["message"]
    assert sim.snapshots[sid] == before and sim.apply_counts[sid] == 0


async def test_unknown_or_foreign_snapshot_is_item_not_found(sim, http):
    missing = "00000000-0000-4000-8000-000000000000"
    async with http.put(url(sim, missing), json={"snapshot": {"name": "x"}}) as r:
        assert r.status == 404
        assert await r.json() == {"itemNotFound": {"code": 404, "message": f"Snapshot {missing} could not be found."}}
    sid = first_id(sim)
    other = "f" * 32  # a real id, seen through another project's path
    async with http.put(url(sim, sid, project=other), json={"snapshot": {"name": "x"}}) as r:
        assert r.status == 404 and "itemNotFound" in await r.json()
    async with http.get(url(sim, sid, "cinder-v3", project=other)) as r:
        assert r.status == 404
    assert sim.snapshots[sid]["name"] != "x"


async def test_token_is_required_and_redacted(sim, http):
    sid = first_id(sim)
    message = "The request you have made requires authentication."
    unauthorized = {"error": {"code": 401, "message": message, "title": "Unauthorized"}}
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.put(url(sim, sid), json={"snapshot": {"name": "x"}}) as r:
            assert r.status == 401 and await r.json() == unauthorized
        async with anonymous.get(url(sim, sid), headers={"X-Auth-Token": "wrong"}) as r:
            assert r.status == 401
    assert sim.snapshots[sid]["name"] != "x"
    async with http.get(url(sim, sid)) as r:
        assert r.status == 200
    assert [q.headers.get("x-auth-token") for q in sim.requests] == [None, "***", "***"]


async def test_no_tokens_means_no_auth():
    async with (
        Simulator(SimulatorConfig(snapshots=3, tokens=set())) as s,
        aiohttp.ClientSession() as anonymous,
        anonymous.put(url(s, first_id(s)), json={"snapshot": {"name": "x"}}) as r,
    ):
        assert r.status == 200


async def test_unrouted_paths_are_not_found_and_still_recorded(sim, http):
    async with http.get(f"{sim.url}/v2/{sim.config.project_id}/volumes/x") as r:
        assert r.status == 404
        assert await r.json() == {"itemNotFound": {"code": 404, "message": "The resource could not be found."}}
    async with http.put(url(sim, first_id(sim)), data=b"not json", params={"x": "1"}) as r:
        assert r.status == 400
    unrouted, malformed = sim.requests
    assert (unrouted.family, unrouted.snapshot_id, unrouted.status) == (None, None, 404)
    assert (malformed.body, malformed.query, malformed.family, malformed.status) == ("not json", "x=1", "v2", 400)
    assert unrouted.t_mono <= malformed.t_mono and malformed.method == "PUT"


# -- listing --------------------------------------------------------------------------------------


async def test_detail_pages_walk_every_snapshot_once_in_order(sim, http):
    seen: list[str] = []
    next_url = url(sim, "detail", "evs") + "?limit=7"
    pages = 0
    while next_url:
        async with http.get(next_url) as r:
            assert r.status == 200
            doc = await r.json()
        pages += 1
        seen += [s["id"] for s in doc["snapshots"]]
        assert all(set(s) == SEED_FIELDS for s in doc["snapshots"])
        links = doc.get("snapshots_links")
        next_url = links[0]["href"] if links else None
        if links:
            assert links[0]["rel"] == "next" and "/cloudsnapshots/detail?limit=7&marker=" in next_url
    assert pages == 8  # 50 = 7 * 7 + 1
    assert seen == list(sim.snapshots) and len(set(seen)) == 50
    ordered = sorted(sim.snapshots.values(), key=lambda s: (s["created_at"], s["id"]))
    assert seen == [s["id"] for s in ordered]


async def test_detail_filters_offset_and_defaults(sim, http):
    async with http.get(url(sim, "detail")) as r:
        doc = await r.json()
    assert len(doc["snapshots"]) == 50 and "snapshots_links" not in doc
    async with http.get(url(sim, "detail"), params={"limit": "25", "marker": doc["snapshots"][24]["id"]}) as r:
        last_page = await r.json()  # exactly the rest: no link to an empty page
    assert len(last_page["snapshots"]) == 25 and "snapshots_links" not in last_page
    ids = [s["id"] for s in doc["snapshots"]]
    async with http.get(url(sim, "detail"), params={"marker": ids[9], "offset": "5", "limit": "3"}) as r:
        assert [s["id"] for s in (await r.json())["snapshots"]] == ids[15:18]
    volume = doc["snapshots"][0]["volume_id"]
    expected = [s["id"] for s in doc["snapshots"] if s["volume_id"] == volume and s["status"] == "available"]
    async with http.get(url(sim, "detail"), params={"volume_id": volume, "status": "available"}) as r:
        assert [s["id"] for s in (await r.json())["snapshots"]] == expected
    name = doc["snapshots"][3]["name"]
    async with http.get(url(sim, "detail"), params={"name": name}) as r:
        assert [s["id"] for s in (await r.json())["snapshots"]] == [ids[3]]
    async with http.get(url(sim)) as r:  # the bare collection lists like detail
        assert [s["id"] for s in (await r.json())["snapshots"]] == ids


@pytest.mark.parametrize(
    "params, message",
    [
        ({"limit": "0"}, "limit param must be between 1 and 1000"),
        ({"limit": "1001"}, "limit param must be between 1 and 1000"),
        ({"limit": "ten"}, "limit param must be an integer"),
        ({"offset": "-1"}, "offset param must be at least 0"),
        ({"marker": "nope"}, "Marker nope could not be found."),
    ],
)
async def test_detail_rejects_bad_paging(sim, http, params, message):
    async with http.get(url(sim, "detail", "cinder-v3"), params=params) as r:
        assert r.status == 400
        assert await r.json() == {"badRequest": {"code": 400, "message": message}}


# -- faults ---------------------------------------------------------------------------------------


async def put_name(sim, http, sid, name, **kw):
    async with http.put(url(sim, sid), json={"snapshot": {"name": name}}, **kw) as r:
        return r.status, r.headers, await r.read()


async def test_reset_drops_the_connection_before_applying(sim, http):
    sim.set_faults([Fault("reset", 1.0)])
    sid = first_id(sim)
    with pytest.raises(aiohttp.ClientConnectionError):
        await put_name(sim, http, sid, "lost")
    assert sim.snapshots[sid]["name"] != "lost" and sim.apply_counts[sid] == 0
    # aiohttp itself retries an idempotent request once after a disconnect: both attempts arrive.
    assert sim.put_counts[sid] >= 1
    assert {(q.fault, q.status) for q in sim.requests} == {("reset", None)}


async def test_reset_after_applies_then_drops(sim, http):
    sim.set_faults([Fault("reset-after", 1.0)])
    sid = first_id(sim)
    with pytest.raises(aiohttp.ClientConnectionError):
        await put_name(sim, http, sid, "applied")
    assert sim.snapshots[sid]["name"] == "applied" and sim.apply_counts[sid] >= 1


async def test_truncate_applies_then_cuts_the_body(sim, http):
    sim.set_faults([Fault("truncate", 1.0)])
    sid = first_id(sim)
    with pytest.raises(aiohttp.ClientPayloadError):
        await put_name(sim, http, sid, "half")
    assert sim.snapshots[sid]["name"] == "half"
    assert sim.requests[-1].fault == "truncate" and sim.requests[-1].status == 200


async def test_gateway_throttling_shapes(sim, http):
    sid = first_id(sim)
    before = dict(sim.snapshots[sid])
    answers = {}
    for kind in ("429", "429-retry-after", "429-retry-date"):
        sim.set_faults([Fault(kind, 1.0)])
        answers[kind] = await put_name(sim, http, sid, kind)
    for status, _headers, body in answers.values():
        doc = json.loads(body)
        assert status == 429 and doc["error_code"] == "APIGW.0308"
        # An injected fault is not a quota: it states none (a client would slow to it).
        assert doc["error_msg"] == "The throttling threshold has been reached"
        assert re.fullmatch(r"[0-9a-f]{32}", doc["request_id"])
    assert "Retry-After" not in answers["429"][1]
    assert answers["429-retry-after"][1]["Retry-After"] == "1"
    when = email.utils.parsedate_to_datetime(answers["429-retry-date"][1]["Retry-After"]).timestamp()
    assert 0.0 < when - time.time() <= 2.0
    assert sim.snapshots[sid] == before


@pytest.mark.parametrize(
    "kind, status, content_type, check",
    [
        ("500", 500, "application/json", lambda b: json.loads(b)["computeFault"]["code"] == 500),
        ("503", 503, "application/json", lambda b: "serviceUnavailable" in json.loads(b)),
        ("403", 403, "application/json", lambda b: "volume:update_snapshot" in json.loads(b)["forbidden"]["message"]),
        ("418", 418, "application/json", lambda b: json.loads(b)["error"]["code"] == 418),
        ("502", 502, "text/html", lambda b: b"<title>502 Bad Gateway</title>" in b),
        ("504", 504, "text/html", lambda b: b"<title>504 Gateway Timeout</title>" in b),
        ("empty", 503, None, lambda b: b == b""),
    ],
)
async def test_error_faults_have_real_shapes_and_change_nothing(sim, http, kind, status, content_type, check):
    sim.set_faults([Fault(kind, 1.0)])
    sid = first_id(sim)
    got_status, headers, body = await put_name(sim, http, sid, "never")
    assert got_status == status and check(body)
    assert headers.get("Content-Type", "").split(";")[0] == (content_type or "")
    assert "X-Openstack-Request-Id" in headers
    assert sim.snapshots[sid]["name"] != "never" and sim.requests[-1].fault == kind


async def test_hang_outlasts_the_client_timeout_and_stop_cuts_it_short():
    s = Simulator(SimulatorConfig(snapshots=3, tokens=set(), faults=[Fault("hang", 1.0)], hang_seconds=30))
    await s.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=0.3)) as session:
            t0 = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await put_name(s, session, first_id(s), "late")
            assert 0.25 < time.monotonic() - t0 < 5
    finally:
        t0 = time.monotonic()
        await s.stop()
        assert time.monotonic() - t0 < 3  # hanging handlers are woken, not waited for 30 s
    assert s.snapshots[first_id(s)]["name"] != "late"


async def test_short_hang_then_answers_normally():
    cfg = SimulatorConfig(snapshots=2, tokens=set(), faults=[Fault("hang", 1.0)], hang_seconds=0.3)
    async with Simulator(cfg) as s:
        async with aiohttp.ClientSession() as session:
            t0 = time.monotonic()
            assert (await put_name(s, session, first_id(s), "eventually"))[0] == 200
            assert time.monotonic() - t0 >= 0.28
        assert s.snapshots[first_id(s)]["name"] == "eventually" and s.requests[0].fault == "hang"


async def test_always_fail_poisons_only_that_snapshot():
    async with Simulator(SimulatorConfig(snapshots=5, tokens=set())) as s, aiohttp.ClientSession() as session:
        poison, healthy = list(s.snapshots)[:2]
        s.set_always_fail({poison: "500"})
        assert [(await put_name(s, session, poison, "x"))[0] for _ in range(3)] == [500, 500, 500]
        assert (await put_name(s, session, healthy, "x"))[0] == 200
        assert s.snapshots[poison]["name"] != "x" and s.put_counts[poison] == 3


async def test_fault_draws_are_deterministic_with_the_seed():
    async def statuses(seed: int) -> list[int]:
        cfg = SimulatorConfig(snapshots=3, seed=seed, tokens=set(), faults=[Fault("500", 0.3), Fault("503", 0.2)])
        async with Simulator(cfg) as s, aiohttp.ClientSession() as session:
            return [(await put_name(s, session, first_id(s), f"n{i}"))[0] for i in range(60)]

    first, again, other = await statuses(1), await statuses(1), await statuses(2)
    assert first == again and first != other
    assert set(first) == {200, 500, 503}
    assert 8 <= first.count(500) <= 30  # ~30% of 60


async def test_latency_is_added_per_request():
    async with (
        Simulator(SimulatorConfig(snapshots=1, tokens=set(), latency=0.2, latency_jitter=0.05)) as s,
        aiohttp.ClientSession() as session,
    ):
        t0 = time.monotonic()
        assert (await put_name(s, session, first_id(s), "slow"))[0] == 200
        assert time.monotonic() - t0 >= 0.15


# -- server-side rate limit -----------------------------------------------------------------------


async def test_rate_limit_admits_exactly_r_per_sliding_second():
    rate = 5
    cfg = SimulatorConfig(snapshots=20, tokens=set(), rate_limit=rate, rate_limit_retry_after=2)
    async with Simulator(cfg) as s, aiohttp.ClientSession() as session:
        ids = list(s.snapshots)
        burst = await asyncio.gather(*(put_name(s, session, ids[i], f"b{i}") for i in range(3 * rate)))
        statuses = [b[0] for b in burst]
        assert statuses.count(200) == rate and statuses.count(429) == 2 * rate
        throttled = [b for b in burst if b[0] == 429]
        assert all(json.loads(b[2])["error_code"] == "APIGW.0308" and b[1]["Retry-After"] == "2" for b in throttled)
        assert sum(q.fault == "throttled" for q in s.requests) == 2 * rate
        assert sum(1 for sid in ids if s.snapshots[sid]["name"].startswith("b")) == rate
        # Refused requests do not extend the window: more refusals half a second in, and still
        # a full quota one second after the first admitted arrival.
        first = min(q.t_mono for q in s.requests if q.status == 200)
        await asyncio.sleep(max(0.0, first + 0.5 - time.monotonic()))
        assert (await put_name(s, session, ids[0], "refused"))[0] == 429
        await asyncio.sleep(max(0.0, first + 1.05 - time.monotonic()))
        again = await asyncio.gather(*(put_name(s, session, ids[i], "c") for i in range(rate)))
        assert [a[0] for a in again] == [200] * rate
        s.set_rate_limit(None)
        more = await asyncio.gather(*(put_name(s, session, ids[i], "d") for i in range(3 * rate)))
        assert {m[0] for m in more} == {200}


# -- seeding --------------------------------------------------------------------------------------


def test_seeding_is_deterministic_and_shaped():
    a = Simulator(SimulatorConfig(snapshots=500, seed=3, autobk_fraction=0.02)).snapshots
    b = Simulator(SimulatorConfig(snapshots=500, seed=3, autobk_fraction=0.02)).snapshots
    c = Simulator(SimulatorConfig(snapshots=500, seed=4)).snapshots
    assert a == b and list(a) == list(b) and set(a) != set(c)
    uuid4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    assert all(uuid4.match(sid) for sid in a)
    snaps = list(a.values())
    autobk = [s for s in snaps if s["name"].startswith("autobk_snapshot_")]
    assert len(autobk) == 10 and all(s["metadata"] == {"__system__enableActive": "true"} for s in autobk)
    assert all(s["metadata"] == {} for s in snaps if s not in autobk)
    assert {s["status"] for s in snaps} <= {"available", "in-use", "error"}
    assert sum(s["status"] == "available" for s in snaps) > 400
    assert all(1 <= s["size"] <= 1000 and "2024-01-01" <= s["created_at"] < "2026-01-01" for s in snaps)
    assert any(s["description"] for s in snaps) and any(not s["description"] for s in snaps)
    # Listing order (created_at, id) follows the numbering.
    assert all(s["name"] in (f"snap-{i:06d}", f"autobk_snapshot_vbs_{s['id'][:8]}") for i, s in enumerate(snaps))


def test_seed_file_seeds_exactly_its_rows(tmp_path):
    csv_path = tmp_path / "inventory.csv"
    csv_path.write_text(
        "\ufeffid,name,description,project_id,size,status\n"
        "aaaa,web-01,,,10,\n"
        "bbbb,autobk_snapshot_vbs_1,from backup,,,\n"
        "cccc,db,主库,p2,5,error\n",
        encoding="utf-8",
    )
    s = Simulator(SimulatorConfig(seed_file=csv_path, project_id="p1"))
    assert list(s.snapshots) == ["aaaa", "bbbb", "cccc"]
    a, b, c = s.snapshots.values()
    assert (a["project_id"], a["size"], a["status"], a["description"]) == ("p1", 10, "available", "")
    assert b["metadata"] == {"__system__enableActive": "true"} and a["metadata"] == {}
    assert (c["project_id"], c["description"], c["status"]) == ("p2", "主库", "error")
    assert Simulator(SimulatorConfig(seed_file=csv_path, project_id="p1")).snapshots == s.snapshots
    csv_path.write_text("id,name,description\naaaa,x,\naaaa,y,\n")
    with pytest.raises(ValueError, match="duplicate id"):
        Simulator(SimulatorConfig(seed_file=csv_path))


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("boom", 0.1)
    with pytest.raises(ValueError, match="within 0..1"):
        Fault("500", 1.5)
    with pytest.raises(ValueError):
        SimulatorConfig(rate_limit=0)
    with pytest.raises(ValueError):
        SimulatorConfig(rate_limit_retry_after=0.5)
    assert Fault.parse("429-retry-after:0.25") == Fault("429-retry-after", 0.25)


# -- control API, threads, CLI --------------------------------------------------------------------


async def test_control_api_reads_and_steers(sim, http):
    sid = first_id(sim)
    await put_name(sim, http, sid, "via-api")
    async with http.get(f"{sim.url}/_sim/snapshots") as r:
        snaps = (await r.json())["snapshots"]
    assert len(snaps) == 50 and next(s for s in snaps if s["id"] == sid)["name"] == "via-api"
    async with http.get(f"{sim.url}/_sim/requests", params={"since": "0"}) as r:
        doc = await r.json()
    assert doc["next"] == 1 and doc["requests"][0]["body"] == {"snapshot": {"name": "via-api"}}
    assert doc["requests"][0]["headers"]["x-auth-token"] == "***"
    async with http.post(f"{sim.url}/_sim/faults", json=[{"kind": "500", "fraction": 1.0}]) as r:
        assert r.status == 200
    assert (await put_name(sim, http, sid, "x"))[0] == 500
    async with http.post(f"{sim.url}/_sim/faults", json=[{"kind": "nope", "fraction": 1.0}]) as r:
        assert r.status == 400  # and the previous faults stay
    async with http.post(f"{sim.url}/_sim/faults", json=[]) as r:
        assert r.status == 200
    async with http.post(f"{sim.url}/_sim/rate-limit", json={"rate": 1}) as r:
        assert r.status == 200
    assert [(await put_name(sim, http, sid, "y"))[0] for _ in range(2)] == [200, 429]
    async with http.get(f"{sim.url}/_sim/stats") as r:
        stats = await r.json()
    assert stats["by_status"] == {"200": 2, "500": 1, "429": 1} and stats["put_counts"] == {sid: 4}
    assert stats["by_fault"] == {"500": 1, "throttled": 1} and stats["rate_limit"] == 1
    async with http.post(f"{sim.url}/_sim/reset-records") as r:
        assert r.status == 200
    assert sim.requests == [] and sum(sim.put_counts.values()) == 0


def test_run_in_thread_serves_synchronous_callers():
    handle = run_in_thread(SimulatorConfig(snapshots=5, tokens={"t"}))
    try:
        sid = next(iter(handle.sim.snapshots))
        req = urllib.request.Request(
            f"{handle.url}/v2/{handle.sim.config.project_id}/snapshots/{sid}",
            data=json.dumps({"snapshot": {"name": "from-thread"}}).encode(),
            headers={"X-Auth-Token": "t", "Content-Type": "application/json"},
            method="PUT",
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200
        assert handle.call(lambda: handle.sim.snapshots[sid]["name"]) == "from-thread"
    finally:
        handle.stop()
    assert not handle.thread.is_alive()
    assert handle.sim.snapshots[sid]["name"] == "from-thread" and len(handle.sim.requests) == 1


def test_cli_flags_build_the_config():
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--fault", "503:0.05", "--fault", "reset:0.01", "--rate-limit", "7", "--no-auth"])
    cfg = config_from_args(args)
    assert cfg.faults == [Fault("503", 0.05), Fault("reset", 0.01)] and cfg.rate_limit == 7 and not cfg.tokens
    assert config_from_args(parser.parse_args([])).tokens == {"sim-token"}
    for bad in (["--fault", "503"], ["--fault", "bogus:0.1"], ["--rate-limit", "0"], ["--port", "70000"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_module_entry_point_serves_until_sigterm():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen(
        [sys.executable, "-m", "worker.simulator", "--port", "0", "--snapshots", "4", "--token", "s3cret"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        try:
            line = proc.stderr.readline()
            # The start line never holds a token given with --token.
            pattern = (r"simulator listening on (http://127\.0\.0\.1:\d+) \(project (\w+), 4 snapshots; "
                       r"1 token given with --token\)\n")
            m = re.fullmatch(pattern, line)
            assert m, line
            with urllib.request.urlopen(f"{m.group(1)}/_sim/health", timeout=5) as resp:
                assert json.load(resp)["snapshots"] == 4
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            assert "s3cret" not in line + proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
    bad = subprocess.run(
        [sys.executable, "-m", "worker.simulator", "--fault", "nope:1"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2 and "unknown fault kind" in bad.stderr
