"""A whole job against the simulator over real sockets: what lands on the server and in the
report."""

from __future__ import annotations

import bisect

import pytest

from helpers import FAST, PROJECT, TOKEN, read_report, relabel_targets, write_jobs
from worker.results import Outcome
from worker.runner import JobSpec, run_job
from worker.settings import ConfigError, load_settings
from worker.simulator import Fault
from worker.sources import InputSpec


def settings_for(sim, **overrides):
    values = {"endpoint": sim.url, "project_id": PROJECT, "token": TOKEN, "rate": 0,
              "concurrency": 16, **FAST}
    values.update(overrides)
    return load_settings(values)


async def run(sim, tmp_path, targets, extra_rows=(), **overrides):
    jobs = write_jobs(tmp_path / "jobs.csv", targets, list(extra_rows))
    report = tmp_path / "report.csv"
    result = await run_job(settings_for(sim, **overrides),
                           JobSpec(InputSpec(str(jobs)), str(report)), on_terminal=False)
    return result, read_report(report)


def puts(sim):
    return [r for r in sim.requests if r.method == "PUT"]


@pytest.mark.parametrize("sim", [{"snapshots": 2200, "faults": [
    Fault("503", 0.03), Fault("500", 0.02), Fault("429", 0.02), Fault("502", 0.01),
    Fault("reset", 0.01), Fault("reset-after", 0.005), Fault("truncate", 0.005),
]}], indirect=True)
async def test_2000_jobs_with_10_percent_transient_faults_all_land(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 2000)
    result, rows = await run(sim, tmp_path, targets, concurrency=32)

    assert result.exit_code == 0
    assert len(rows) == 2000
    assert sorted(int(r["line"]) for r in rows) == list(range(2, 2002))
    assert {r["outcome"] for r in rows} == {"applied"}
    for sid, name in targets.items():
        assert sim.snapshots[sid]["name"] == name
    faulted = [r for r in puts(sim) if r.fault]
    assert len(faulted) > 100  # the faults really happened...
    assert result.summary.retries == len(faulted)  # ...and each cost exactly one retry
    assert max(int(r["attempts"]) for r in rows) >= 2


async def test_report_rows_carry_what_the_server_answered(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 3)
    _, rows = await run(sim, tmp_path, targets)
    for row in rows:
        assert row["server_name"] == row["name"] == targets[row["snapshot_id"]]
        assert row["http_status"] == "200" and row["request_id"].startswith("req-")
        assert row["project_id"] == PROJECT and float(row["latency_ms"]) > 0


@pytest.mark.parametrize("sim", [{"snapshots": 20}], indirect=True)
async def test_permanent_errors_are_sent_once(sim, tmp_path):
    ids = sorted(sim.snapshots)
    forbidden, fine = ids[0], ids[1]
    sim.set_always_fail({forbidden: "403"})
    ghost = "00000000-0000-4000-8000-000000000000"
    result, rows = await run(sim, tmp_path, {forbidden: "a", fine: "b", ghost: "c"})

    by_id = {r["snapshot_id"]: r for r in rows}
    assert (by_id[forbidden]["outcome"], by_id[forbidden]["http_status"]) == ("failed", "403")
    assert by_id[forbidden]["error_code"] == "forbidden"
    assert (by_id[ghost]["outcome"], by_id[ghost]["error_code"]) == ("failed", "itemNotFound")
    assert "could not be found" in by_id[ghost]["error_message"]
    assert by_id[fine]["outcome"] == "applied"
    assert sim.put_counts[forbidden] == 1 and sim.put_counts[ghost] == 1
    assert result.exit_code == 1


@pytest.mark.parametrize("kind", ["429-retry-after", "429-retry-date"])
@pytest.mark.parametrize("sim", [{"snapshots": 5}], indirect=True)
async def test_retry_after_is_obeyed_in_both_forms(sim, tmp_path, kind):
    sid = sorted(sim.snapshots)[0]
    sim.set_always_fail({sid: kind})
    _, rows = await run(sim, tmp_path, {sid: "x"}, max_attempts=2)

    arrivals = [r.t_mono for r in puts(sim)]
    assert len(arrivals) == 2
    # The server asked for about one second (an HTTP date has whole-second precision).
    assert arrivals[1] - arrivals[0] >= (0.9 if kind == "429-retry-after" else 0.0)
    assert arrivals[1] - arrivals[0] >= 0.9 or kind == "429-retry-date"
    assert rows[0]["outcome"] == "failed" and rows[0]["error_code"] == "APIGW.0308"


@pytest.mark.parametrize("sim", [{"snapshots": 200, "rate_limit": 100}], indirect=True)
async def test_server_side_throttling_ends_applied(sim, tmp_path):
    # The operator's --rate is above the server's real quota: 429s, then backoff, then success.
    targets = relabel_targets(sim.snapshots, 200)
    result, rows = await run(sim, tmp_path, targets, rate=150, concurrency=32,
                             throttled_backoff=0.5)

    throttled = [r for r in puts(sim) if r.status == 429]
    assert throttled, "the server-side limit was never reached"
    assert {r["outcome"] for r in rows} == {"applied"}
    assert result.summary.throttled == len(throttled)


@pytest.mark.parametrize("sim", [{"snapshots": 150}], indirect=True)
async def test_the_rate_limit_holds_on_the_servers_clock(sim, tmp_path):
    rate = 40
    targets = relabel_targets(sim.snapshots, 150)
    result, _ = await run(sim, tmp_path, targets, rate=rate, concurrency=32)

    # Every request counts, the credential check before the first PUT included.
    arrivals = sorted(r.t_mono for r in sim.requests)
    assert len(arrivals) == 151 and len(puts(sim)) == 150
    # Every one-second window starting at an arrival: an upper bound, so a slow machine only
    # makes it easier to pass.
    busiest = max(bisect.bisect_left(arrivals, t + 1.0) - i for i, t in enumerate(arrivals))
    assert busiest <= rate
    assert result.summary.counts[Outcome.APPLIED] == 150


async def test_body_holds_only_the_fields_set(sim, tmp_path):
    ids = sorted(sim.snapshots)[:2]
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(f'{{"snapshot_id": "{ids[0]}", "description": "只改描述"}}\n'
                    f'{{"snapshot_id": "{ids[1]}", "name": "n", "display_name": "ignored"}}\n',
                    encoding="utf-8")
    before = sim.snapshots[ids[0]]["name"]
    await run_job(settings_for(sim), JobSpec(InputSpec(str(jobs)), str(tmp_path / "r.csv")),
                  on_terminal=False)
    bodies = {r.snapshot_id: r.body for r in puts(sim)}
    assert bodies[ids[0]] == {"snapshot": {"description": "只改描述"}}
    assert bodies[ids[1]] == {"snapshot": {"name": "n"}}
    assert sim.snapshots[ids[0]]["name"] == before


@pytest.mark.parametrize("family", ["v2", "evs", "cinder-v3"])
async def test_every_path_family(sim, tmp_path, family):
    targets = relabel_targets(sim.snapshots, 2)
    await run(sim, tmp_path, targets, path_family=family)
    assert {r.family for r in puts(sim)} == {family}
    assert all(sim.snapshots[sid]["name"] == name for sid, name in targets.items())


async def test_requests_name_the_tool_and_carry_the_token(sim, tmp_path):
    await run(sim, tmp_path, relabel_targets(sim.snapshots, 1))
    headers = puts(sim)[0].headers
    assert headers["user-agent"].startswith("snaprelabel/")
    assert headers["x-auth-token"] == "***"  # the simulator masks what it records
    assert puts(sim)[0].status == 200


async def test_a_wrong_token_stops_the_job_before_any_put(sim, tmp_path):
    # Was: every row failed with 401. The credentials are now proven first (one GET of the
    # snapshot list): a wrong token is one clear error, and no row is sent or reported.
    with pytest.raises(ConfigError, match=r"credentials \(token\) were refused .* HTTP 401"):
        await run(sim, tmp_path, relabel_targets(sim.snapshots, 3), token="wrong-token")
    assert puts(sim) == []
    assert [(r.method, r.status) for r in sim.requests] == [("GET", 401)]
    assert not (tmp_path / "report.csv").exists()
