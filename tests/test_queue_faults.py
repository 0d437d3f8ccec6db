"""Queue mode when things go wrong: a job that always fails, Redis crashing and coming back (or
not), a consumer stopped by SIGTERM with jobs in flight."""

from __future__ import annotations

import json
import signal

import pytest

from helpers import PROJECT, read_report, relabel_targets, write_jobs
from queue_helpers import (  # noqa: F401 - fixtures
    consumers,
    dead_letters,
    enqueue,
    pending_count,
    redis_server,
    redis_url,
    results,
    run_worker,
    stream,
    sync_client,
    wait_for,
)
from worker.simulator.identity import AccessKeyPair

KEY = AccessKeyPair("SIMAKQUEUE0000000001", "queue-secret-key-4b2c9d1", "queue-security-token-0e7")


def test_a_poison_job_lands_in_the_dead_letter_stream_after_its_deliveries(
        sim_thread, redis_url, stream, consumers, tmp_path):
    sim = sim_thread(snapshots=30)
    targets = relabel_targets(sim.sim.snapshots, 20)
    poison = sorted(targets)[7]
    sim.sim.set_always_fail({poison: "500"})
    enqueue(redis_url, stream, write_jobs(tmp_path / "jobs.csv", targets), tmp_path)

    consumer = consumers(redis_url, stream, sim.url, "solo", "--until-empty", "--rate", "0",
                         "--claim-idle", "0.5", "--max-deliveries", "3", "--max-attempts", "2")
    assert consumer.wait(60) == 0, consumer.stderr()

    client = sync_client()
    dead = dead_letters(client, stream)
    assert len(dead) == 1
    assert dead[0]["snapshot_id"] == poison and dead[0]["deliveries"] == "3"
    assert "HTTP 500" in dead[0]["reason"] and dead[0]["name"] == targets[poison]
    assert dead[0]["source"].endswith("jobs.csv") and dead[0]["line"].isdigit()
    assert sim.sim.put_counts[poison] == 3 * 2  # three deliveries of two attempts each

    entries = {e["snapshot_id"]: e for e in results(client, stream)}
    assert len(entries) == 20  # one answer per job, the dead one included
    assert entries[poison]["outcome"] == "failed" and entries[poison]["error_code"] == "dead_letter"
    assert {e["outcome"] for sid, e in entries.items() if sid != poison} == {"applied"}
    assert pending_count(client, stream) == 0

    status = run_worker("queue", "status", "--redis", redis_url, "--stream", stream, "--json")
    assert status.returncode == 0, status.stderr
    figures = json.loads(status.stdout)
    assert (figures["length"], figures["pending"], figures["dead"], figures["results"]) == (0, 0, 1, 20)
    assert figures["consumers"] == []  # done and holding nothing, it left the group


def test_redis_crashing_mid_run_loses_nothing_and_doubles_nothing(
        sim_thread, redis_server, consumers, tmp_path):
    # With AOF (fsync always) the stream, the group's pending list and the results survive a
    # crash: the consumers ride out the outage and finish. (Without persistence: next test.)
    server = redis_server(persistent=True)
    sim = sim_thread(snapshots=600, faults=["503:0.02"])
    targets = relabel_targets(sim.sim.snapshots, 600)
    stream = "crash:jobs"
    enqueue(server.url, stream, write_jobs(tmp_path / "jobs.csv", targets), tmp_path)
    client = sync_client(server.url)

    started = [consumers(server.url, stream, sim.url, f"c{i}", "--until-empty", "--rate", "0",
                         "--shared-rate", "200", "--claim-idle", "5") for i in range(2)]
    wait_for(lambda: client.xlen("crash:results") >= 100, 60, what="the job to be under way")
    server.crash()
    wait_for(lambda: any(e["event"] == "redis unreachable: reconnecting" for c in started
                         for e in c.events()), 20, what="the consumers to notice")
    server.start()
    for consumer in started:
        assert consumer.wait(90) == 0, consumer.stderr()

    client = sync_client(server.url)
    entries = results(client, stream)
    assert sorted(e["snapshot_id"] for e in entries) == sorted(targets)
    assert {e["outcome"] for e in entries} == {"applied"}
    assert pending_count(client, stream) == 0 and client.xlen(stream) == 0
    assert all(sim.sim.snapshots[sid]["name"] == name for sid, name in targets.items())
    assert any(e["event"] == "redis reconnected" for c in started for e in c.events())


@pytest.mark.parametrize("comes_back", [False, True], ids=["gone", "back-empty"])
def test_redis_that_never_comes_back_or_lost_its_data_is_exit_4(
        sim_thread, redis_server, consumers, tmp_path, comes_back):
    server = redis_server(persistent=False)
    sim = sim_thread(snapshots=400, latency=0.05)
    stream = "lost:jobs"
    enqueue(server.url, stream, write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 400)), tmp_path)
    client = sync_client(server.url)
    consumer = consumers(server.url, stream, sim.url, "c", "--until-empty", "--rate", "0",
                         "--redis-wait", "2", "--grace", "1")
    wait_for(lambda: client.xlen("lost:results") >= 20, 60, what="the job to be under way")
    server.crash()
    if comes_back:  # a restart without persistence: the stream and its group are gone
        server.start()

    assert consumer.wait(30) == 4
    message = consumer.stderr()
    expected = "lost its data" if comes_back else "unreachable for"
    assert expected in message and "Traceback" not in message
    assert ("queue them again" if comes_back else "another consumer takes them over") in message


def test_sigterm_drains_and_hands_unfinished_jobs_to_the_next_consumer(
        sim_thread, redis_url, stream, consumers, tmp_path):
    jobs = 200
    sim = sim_thread(snapshots=jobs, latency=0.05)
    targets = relabel_targets(sim.sim.snapshots, jobs)
    enqueue(redis_url, stream, write_jobs(tmp_path / "jobs.csv", targets), tmp_path)
    client = sync_client()
    # A long claim-idle: the next consumer can only finish quickly if the stopped one handed its
    # jobs back on the way out.
    first = consumers(redis_url, stream, sim.url, "first", "--rate", "40", "--claim-idle", "600",
                      "--metrics-port", "0", "--report", str(tmp_path / "first.csv"))
    wait_for(lambda: client.xlen(stream.removesuffix(":jobs") + ":results") >= 40, 60,
             what="the first consumer to be under way")

    port = next(e["metrics_port"] for e in first.events() if e["event"] == "consumer start")
    from urllib.request import urlopen
    metrics = urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'snaprelabel_jobs_total{outcome="applied"}' in metrics
    assert "snaprelabel_request_duration_seconds_count" in metrics
    assert "snaprelabel_queue_waiting_jobs" in metrics and "snaprelabel_redis_up 1.0" in metrics

    first.kill(signal.SIGTERM)
    assert first.wait(30) == 143
    summary = [e for e in first.events() if e["event"] == "summary"][-1]
    assert summary["exit_code"] == 143
    handed_back = {r["snapshot_id"] for r in read_report(tmp_path / "first.csv")
                   if r["outcome"] == "interrupted"}
    assert handed_back, "the first consumer held no unfinished job when it stopped"

    second = consumers(redis_url, stream, sim.url, "second", "--until-empty", "--rate", "0",
                       "--claim-idle", "600")
    assert second.wait(60) == 0, second.stderr()
    entries = results(client, stream)
    assert sorted(e["snapshot_id"] for e in entries) == sorted(targets)
    assert {e["consumer"] for e in entries} == {"first", "second"}
    assert {e["consumer"] for e in entries if e["snapshot_id"] in handed_back} == {"second"}
    assert {e["outcome"] for e in entries} == {"applied"}
    assert pending_count(client, stream) == 0


def test_credentials_refused_mid_run_stop_the_consumer_and_lose_no_job(
        sim_thread, redis_url, stream, consumers, tmp_path):
    sim = sim_thread(snapshots=150, access_keys=(KEY,))
    targets = relabel_targets(sim.sim.snapshots, 150)
    enqueue(redis_url, stream, write_jobs(tmp_path / "jobs.csv", targets), tmp_path)
    client = sync_client()
    aksk = ("--auth-method", "aksk", "--access-key", KEY.access_key, "--project-id", PROJECT, "--until-empty",
            "--claim-idle", "1", "--rate", "50")
    env = {"HUAWEICLOUD_SDK_SK": KEY.secret_key, "HUAWEICLOUD_SDK_SECURITY_TOKEN": KEY.security_token}
    first = consumers(redis_url, stream, sim.url, "first", *aksk, env=env)
    wait_for(lambda: client.xlen(stream.removesuffix(":jobs") + ":results") >= 30, 60,
             what="the first consumer to be under way")
    rotated = AccessKeyPair(KEY.access_key, "rotated-secret-7e1", KEY.security_token)
    sim.call(sim.sim.identity.keys.__setitem__, KEY.access_key, rotated)

    assert first.wait(30) == 3  # it stopped itself: its key is refused
    assert [e for e in first.events() if e["event"] == "summary"][-1]["stopped"].startswith(
        "credentials refused")
    assert {e["outcome"] for e in results(client, stream)} == {"applied"}  # no job failed for it

    env["HUAWEICLOUD_SDK_SK"] = rotated.secret_key  # the operator fixes the secret
    second = consumers(redis_url, stream, sim.url, "second", *aksk, env=env)
    assert second.wait(60) == 0, second.stderr()
    entries = results(client, stream)
    assert sorted(e["snapshot_id"] for e in entries) == sorted(targets)
    assert {e["outcome"] for e in entries} == {"applied"}
    assert pending_count(client, stream) == 0 and not dead_letters(client, stream)


def test_a_run_of_403_stops_the_consumer_and_the_jobs_it_did_not_send_wait_in_the_stream(
        sim_thread, redis_url, stream, consumers, tmp_path):
    sim = sim_thread(snapshots=150)
    targets = relabel_targets(sim.sim.snapshots, 150)
    sim.call(sim.sim.set_always_fail, {sid: "403" for sid in targets})  # a role that may only list
    enqueue(redis_url, stream, write_jobs(tmp_path / "jobs.csv", targets), tmp_path)
    client = sync_client()
    flags = ("--until-empty", "--rate", "0", "--concurrency", "4", "--claim-idle", "1")

    first = consumers(redis_url, stream, sim.url, "first", *flags)
    assert first.wait(60) == 3, first.stderr()
    summary = [e for e in first.events() if e["event"] == "summary"][-1]
    assert summary["stopped"] == "auth_failures"
    refused = {e["snapshot_id"]: e for e in results(client, stream)}
    sent = [sid for sid, count in sim.sim.put_counts.items() for _ in range(count)]
    # The 10th refusal in a row trips it; the requests in flight and one writer batch follow.
    assert 10 <= len(sent) <= 10 + 2 * 4
    assert sorted(refused) == sorted(sent)  # each refused job answered once, none sent twice
    assert {(e["outcome"], e["http_status"]) for e in refused.values()} == {("failed", "403")}

    sim.call(sim.sim.set_always_fail, {})  # the operator grants the permission
    second = consumers(redis_url, stream, sim.url, "second", *flags)
    assert second.wait(60) == 0, second.stderr()
    entries = results(client, stream)
    assert sorted(e["snapshot_id"] for e in entries) == sorted(targets)  # every job, once
    applied = {e["snapshot_id"] for e in entries if e["outcome"] == "applied"}
    assert applied == set(targets) - set(refused)
    assert all(sim.sim.snapshots[sid]["name"] == targets[sid] for sid in applied)
    assert pending_count(client, stream) == 0 and not dead_letters(client, stream)
