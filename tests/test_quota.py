"""The simulator's gateway quotas: each model driven by a fake clock (exact counts per window,
Retry-After values, the 429's words), then over real sockets."""

from __future__ import annotations

import argparse
import asyncio
import json
import re

import aiohttp
import pytest

from worker.simulator import Simulator, SimulatorConfig
from worker.simulator.cli import add_arguments, config_from_args
from worker.simulator.quota import (
    FixedWindow,
    Gate,
    QuotaChange,
    SlidingWindow,
    TokenBucket,
    parse_bucket,
    parse_window,
)

TOKEN = {"X-Auth-Token": "sim-token"}
STATED = "The throttling threshold has been reached: policy user over ratelimit,limit:{},time:{}"


class Clock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def send(gate: Gate, clock: Clock, count: int, start: float, end: float) -> list[bool]:
    """`count` requests spread evenly over [start, end): admitted or not, in order."""
    out = []
    for i in range(count):
        clock.now = start + (end - start) * i / count
        out.append(gate.check() is None)
    return out


# -- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "limit", "window", "canonical"), [
    ("100/s", 100, 1, "100/s"), ("600/min", 600, 60, "600/min"), ("36000/h", 36000, 3600, "36000/h"),
    ("240/20s", 240, 20, "240/20s"), ("5/2min", 5, 120, "5/120s"), (" 7 / second ", 7, 1, "7/s"),
    ("10", 10, 1, "10/s"),
])
def test_window_quotas_read_as_users_write_them(text, limit, window, canonical):
    quota = parse_window(text)
    assert (quota.limit, quota.window, quota.describe()) == (limit, window, canonical)


@pytest.mark.parametrize("text", ["", "0/s", "10/0s", "ten/s", "10/fortnight", "10/s/s", "-5/s", "1.5/s"])
def test_nonsense_quotas_are_refused_with_the_shapes_that_work(text):
    with pytest.raises(ValueError, match="100/s, 600/min"):
        parse_window(text)


def test_buckets_and_changes_parse():
    bucket = parse_bucket("2.5:10")
    assert (bucket.rate, bucket.burst, bucket.describe()) == (2.5, 10, "bucket 2.5:10")
    for bad in ("10", "0:5", "10:0", "x:y"):
        with pytest.raises(ValueError, match="RATE:BURST"):
            parse_bucket(bad)
    assert QuotaChange.parse("30s:50/s") == QuotaChange(30.0, "50/s")
    assert QuotaChange.parse("2min:300/min") == QuotaChange(120.0, "300/min")
    assert QuotaChange.parse("45:5:10") == QuotaChange(45.0, "5:10")  # a bucket
    for bad in ("50/s", "soon:50/s", "30s:fast", "30s:"):
        with pytest.raises(ValueError):
            QuotaChange.parse(bad)


# -- the models, on a fake clock ---------------------------------------------------------------


def test_fixed_window_admits_exactly_n_per_window_aligned_on_the_clock():
    clock = Clock()
    gate = Gate(parse_window("600/min"), clock=clock)
    # 650 requests between 0:30 and 1:30: the first window (0:00-1:00) has 325 of them, all
    # admitted; the second gets 325 as well, under its 600.
    assert send(gate, clock, 650, 30.0, 90.0).count(False) == 0
    # 700 within the window 2:00-3:00: exactly 600 admitted, the first 600.
    answers = send(gate, clock, 700, 120.0, 180.0)
    assert answers == [True] * 600 + [False] * 100
    # The window reopens on the minute, not 60 s after its first request.
    clock.now = 180.0
    assert gate.check() is None
    windows = {(w["start"], w["seconds"]): (w["accepted"], w["throttled"]) for w in gate.stats()["windows"]}
    assert windows == {(0, 60): (325, 0), (60, 60): (325, 0), (120, 60): (600, 100), (180, 60): (1, 0)}
    assert (gate.accepted, gate.throttled) == (1251, 100)


def test_a_fixed_window_is_not_a_sliding_one():
    clock = Clock()
    gate = Gate(parse_window("240/20s"), clock=clock)
    # 240 at the end of one window and 240 at the start of the next: 480 in a tenth of a second.
    assert all(send(gate, clock, 240, 19.9, 19.99)) and all(send(gate, clock, 240, 20.0, 20.09))
    assert not send(gate, clock, 1, 20.1, 20.2)[0]


def test_retry_after_is_the_time_to_the_window_reopening_rounded_up():
    clock = Clock(120.0)
    gate = Gate(FixedWindow(2, 60), retry_after=True, clock=clock)
    assert gate.check() is None and gate.check() is None
    clock.now = 150.2
    refusal = gate.check()
    assert refusal is not None and refusal.retry_after == "30"  # 29.8 s to 3:00
    clock.now = 179.99
    assert gate.check().retry_after == "1"  # never 0: the window is still closed
    per_second = Gate(parse_window("100/s"), retry_after=True, clock=clock)
    clock.now = 7.25
    assert [per_second.check() is None for _ in range(101)].count(False) == 1
    assert per_second.check().retry_after == "1"


def test_without_retry_after_no_header_is_sent():
    clock = Clock()
    gate = Gate(FixedWindow(1, 60), clock=clock)
    gate.check()
    assert gate.check().retry_after is None


@pytest.mark.parametrize(("model", "limit", "time"), [
    (FixedWindow(600, 60), "600", "1 minute"), (FixedWindow(100, 1), "100", "1 second"),
    (FixedWindow(240, 20), "240", "20 second"), (FixedWindow(36000, 3600), "36000", "1 hour"),
    (TokenBucket(10, 20), "10", "1 second"), (SlidingWindow(5), "5", "1 second"),
])
def test_the_429_states_the_limit_and_window_or_not(model, limit, time):
    clock = Clock()
    for stated in (True, False):
        gate = Gate(model, limit_stated=stated, clock=clock)
        while (refusal := gate.check()) is None:
            pass
        assert (refusal.limit, refusal.time) == ((limit if stated else None), time)


def test_token_bucket_spends_its_burst_then_refills_at_its_rate():
    clock = Clock(1000.0)
    gate = Gate(TokenBucket(10, 20), retry_after=True, clock=clock)
    assert send(gate, clock, 25, 1000.0, 1000.0).count(True) == 20  # all at once: the burst
    refusal = gate.check()
    assert refusal is not None and refusal.retry_after == "1"  # next token in 0.1 s, rounded up
    clock.now = 1000.55  # 5.5 tokens' worth
    assert [gate.check() is None for _ in range(8)] == [True] * 5 + [False] * 3
    # Steady: 50 attempts a second for 10 s get the 5 tokens gathered since 1000.55 (4.5 and the
    # half left), then 10 a second: never the 50 asked for, never a burst past 20.
    assert send(gate, clock, 500, 1001.0, 1011.0).count(True) in (103, 104, 105)


def test_a_bucket_with_a_slow_rate_states_when_the_next_token_comes():
    clock = Clock()
    gate = Gate(TokenBucket(0.25, 1), retry_after=True, clock=clock)
    assert gate.check() is None
    clock.now = 1.0
    assert gate.check().retry_after == "3"


def test_sliding_window_keeps_the_original_rate_limit_and_its_fixed_retry_after():
    clock = Clock(5.5)
    gate = Gate(SlidingWindow(5, retry_after=2), retry_after=True, clock=clock)
    assert [gate.check() is None for _ in range(7)] == [True] * 5 + [False] * 2
    assert gate.check().retry_after == "2"  # the fixed value wins over the computed one
    clock.now = 6.4  # still within a second of all five
    assert gate.check() is not None
    clock.now = 6.5
    assert gate.check() is None


def test_scheduled_changes_fall_due_on_the_gates_clock():
    clock = Clock(1000.0)
    gate = Gate(parse_window("100/s"), changes=[QuotaChange.parse("60s:200/s"), QuotaChange.parse("30s:50/s")],
                clock=clock)
    assert send(gate, clock, 150, 1029.0, 1029.5).count(True) == 100
    assert send(gate, clock, 150, 1030.0, 1030.5).count(True) == 50
    assert send(gate, clock, 150, 1059.0, 1059.5).count(True) == 50
    assert send(gate, clock, 250, 1060.0, 1060.5).count(True) == 200
    stats = gate.stats()
    assert [(c["after"], c["quota"], c["at"]) for c in stats["changes_applied"]] == [
        (30.0, "50/s", 1030.0), (60.0, "200/s", 1060.0)]
    assert stats["changes_pending"] == [] and stats["quota"] == "200/s" and stats["per_second"] == 200
    by_start = {w["start"]: (w["quota"], w["accepted"], w["throttled"]) for w in stats["windows"]}
    assert by_start[1029] == ("100/s", 100, 50) and by_start[1030] == ("50/s", 50, 100)


# -- configuration, command line ---------------------------------------------------------------


def test_config_checks_quotas():
    cfg = SimulatorConfig(snapshots=1, quota="600/minute", quota_changes=("30s:50/s",))
    assert cfg.quota == "600/min" and cfg.quota_changes == (QuotaChange(30.0, "50/s"),)
    gate = cfg.gate()
    assert gate is not None and isinstance(gate.model, FixedWindow) and gate.model.limit == 600
    for bad in ({"quota": "600/min", "rate_limit": 5}, {"quota": "1/s", "quota_bucket": "1:1"},
                {"quota": "600/fortnight"}, {"quota_bucket": "10"}, {"quota_changes": ("30s:50/s",)},
                {"quota": "5/s", "quota_changes": ("later:50/s",)}):
        with pytest.raises(ValueError):
            SimulatorConfig(snapshots=1, **bad)
    assert SimulatorConfig(snapshots=1).gate() is None


def test_cli_quota_flags_build_the_config():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args([
        "--quota", "240/20s", "--quota-retry-after", "on", "--quota-limit-stated", "off",
        "--quota-change", "30s:120/20s", "--quota-change", "1min:480/20s"]))
    assert (cfg.quota, cfg.quota_retry_after, cfg.quota_limit_stated) == ("240/20s", True, False)
    assert cfg.quota_changes == (QuotaChange(30.0, "120/20s"), QuotaChange(60.0, "480/20s"))
    cfg = config_from_args(parser.parse_args(["--quota-bucket", "10:20"]))
    assert cfg.quota_bucket == "10:20" and not cfg.quota_retry_after and cfg.quota_limit_stated
    for bad in (["--quota", "fast"], ["--quota-bucket", "10"], ["--quota", "5/s", "--rate-limit", "5"],
                ["--quota-retry-after", "maybe"], ["--quota-change", "50/s"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


# -- over real sockets -------------------------------------------------------------------------


async def _put(session: aiohttp.ClientSession, sim: Simulator, sid: str) -> tuple[int, dict[str, str], bytes]:
    url = f"{sim.url}/v2/{sim.config.project_id}/snapshots/{sid}"
    async with session.put(url, json={"snapshot": {"name": "q"}}) as r:
        return r.status, dict(r.headers), await r.read()


@pytest.mark.parametrize(("stated", "retry_after"), [(True, False), (False, True)])
async def test_n_plus_k_requests_in_a_window_get_exactly_k_gateway_429s(stated, retry_after):
    clock = Clock(600.0 + 12.5)  # 12.5 s into a minute: 47.5 s to the next
    async with Simulator(SimulatorConfig(snapshots=20, seed=3)) as sim, \
            aiohttp.ClientSession(headers=TOKEN) as session:
        sim.set_quota(Gate(parse_window("12/min"), retry_after=retry_after, limit_stated=stated, clock=clock))
        ids = list(sim.snapshots)[:15]
        answers = await asyncio.gather(*(_put(session, sim, sid) for sid in ids))
        async with session.get(f"{sim.url}/v2/{sim.config.project_id}/snapshots/detail") as r:
            listing = r.status  # a listing counts against the quota too
        async with session.get(f"{sim.url}/_sim/stats") as r:  # the control API does not
            stats = await r.json()
    statuses = [a[0] for a in answers]
    assert statuses.count(200) == 12 and statuses.count(429) == 3 and listing == 429
    refused = [a for a in answers if a[0] == 429]
    expected = STATED.format(12, "1 minute") if stated else "The throttling threshold has been reached"
    for _status, headers, body in refused:
        doc = json.loads(body)
        assert set(doc) == {"error_code", "error_msg", "request_id"}
        assert doc["error_code"] == "APIGW.0308" and doc["error_msg"] == expected
        assert re.fullmatch(r"[0-9a-f]{32}", doc["request_id"])
        assert headers.get("Retry-After") == ("48" if retry_after else None)
    # Exactly the admitted ones were applied, and the server's own counters say so.
    assert sum(1 for sid in ids if sim.snapshots[sid]["name"] == "q") == 12
    quota = stats["quota"]
    assert (quota["accepted"], quota["throttled"], quota["quota"]) == (12, 4, "12/min")
    assert quota["windows"] == [{"start": 600, "seconds": 60, "quota": "12/min", "accepted": 12, "throttled": 4}]
    assert stats["by_status"] == {"200": 12, "429": 4}


async def test_control_api_sets_a_quota_and_the_identity_service_is_not_counted():
    cfg = SimulatorConfig(snapshots=5, users=("alice:pw",))
    async with Simulator(cfg) as sim, aiohttp.ClientSession() as session:
        async with session.post(f"{sim.url}/_sim/quota", json={"quota": "often"}) as r:
            assert r.status == 400 and "600/min" in (await r.json())["error"]["message"]
        # A bucket that refills once in 1,000 s: three requests, then 429s, whatever the clock does.
        body = {"bucket": "0.001:3", "retry_after": True, "limit_stated": False, "changes": ["1h:5/s"]}
        async with session.post(f"{sim.url}/_sim/quota", json=body) as r:
            doc = await r.json()
        assert r.status == 200 and doc["quota"]["quota"] == "bucket 0.001:3"
        assert doc["quota"]["changes_pending"] == [{"after": 3600.0, "quota": "5/s"}]
        auth = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "alice", "password": "pw", "domain": {"name": "Default"}}}}}}
        for _ in range(5):
            async with session.post(f"{sim.url}/v3/auth/tokens", json=auth) as r:
                assert r.status == 201
                token = r.headers["X-Subject-Token"]
        session.headers["X-Auth-Token"] = token
        answers = [await _put(session, sim, sid) for sid in list(sim.snapshots)]
        assert [a[0] for a in answers] == [200, 200, 200, 429, 429]
        assert int(answers[3][1]["Retry-After"]) > 900
        assert json.loads(answers[3][2])["error_msg"] == "The throttling threshold has been reached"
        async with session.get(f"{sim.url}/_sim/stats") as r:
            quota = (await r.json())["quota"]
        assert (quota["accepted"], quota["throttled"]) == (3, 2)
        async with session.post(f"{sim.url}/_sim/quota", json={}) as r:
            assert r.status == 200 and (await r.json())["quota"] is None
        assert (await _put(session, sim, list(sim.snapshots)[0]))[0] == 200
