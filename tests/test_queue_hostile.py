"""Queue mode against hostile input and a hostile Redis, for real: messages no producer of ours
would write (each ends as a `rejected` result naming the field, acknowledged, and the stream goes
on), other consumer groups, keys of the wrong type, error replies, maxmemory, entries deleted
while pending, answers later than the socket timeout."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
import redis

from helpers import PROJECT, read_report, relabel_targets, write_jobs
from queue_helpers import (  # noqa: F401 - fixtures
    consumers,
    enqueue,
    error_redis,
    pending_count,
    redis_server,
    redis_url,
    results,
    run_worker,
    stream,
    sync_client,
    wait_for,
)
from worker.jobs import Job, JobRules
from worker.queue.consumer import QueueConsumer, QueueOptions, create_group
from worker.queue.redis_link import SOCKET_TIMEOUT, RedisLink, RedisRefused
from worker.queue.streams import QueueNames
from worker.results import Outcome, from_job
from worker.stop import Stop

GHOST = "00000000-0000-4000-8000-000000000000"

# label -> (changes to a valid message, the field its rejection must name)
HOSTILE: dict[str, tuple[dict, str]] = {
    "superscript line": ({"line": "²"}, "line"),  # str.isdigit() is true, int() fails
    "line past int()'s digit limit": ({"line": "9" * 5000}, "line"),
    "negative line": ({"line": "-3"}, "line"),
    "no snapshot_id": ({"snapshot_id": None}, "snapshot_id"),
    "nothing to change": ({"name": None}, "name"),
    "huge name": ({"name": "n" * 1_000_000}, "name"),
    "long snapshot_id in a small message": ({"snapshot_id": "x" * 20_000}, "snapshot_id"),
    "huge field of the producer's own": ({"blob": "b" * 1_000_000}, "blob"),
    "huge field named in bytes not UTF-8": ({b"\xffblob": "b" * 1_000_000}, "blob"),
    "name not UTF-8": ({"name": b"caf\xe9"}, "name"),
    "previous_name not UTF-8": ({"previous_name": b"\xff\xfe"}, "previous_name"),
    "source not UTF-8": ({"source": b"jobs-\xff.csv"}, "source"),
}


def hostile_message(changes: dict) -> dict:
    message = {
        "snapshot_id": GHOST, "project_id": PROJECT, "name": "x", "source": "producer", "line": "7",
        **changes}
    return {key: value for key, value in message.items() if value is not None}


def test_unreadable_messages_are_rejected_and_acknowledged_and_the_stream_goes_on(
        sim_thread, redis_url, stream, consumers, tmp_path):
    sim = sim_thread(snapshots=3)
    good, forged = list(relabel_targets(sim.sim.snapshots, 2))
    raw = redis.Redis.from_url(redis_url)  # bytes in, bytes out: what any producer may write
    raw.xgroup_create(stream, "relabel", id="0", mkstream=True)
    # One was already delivered to a consumer that crashed on it: its restart claims it.
    crashed = raw.xadd(stream, hostile_message({"line": "²"})).decode()
    raw.xreadgroup("relabel", "crashed", {stream: ">"}, count=1)
    ids = {label: raw.xadd(stream, hostile_message(changes)).decode()
           for label, (changes, _field) in HOSTILE.items()}
    good_id = raw.xadd(stream, {"snapshot_id": good, "project_id": PROJECT, "name": "good"}).decode()
    # Fields named like the ones a consumer writes itself cannot forge its results entry.
    forged_id = raw.xadd(stream, {"snapshot_id": forged, "project_id": PROJECT, "name": "forged",
                                  "job_id": "1-1", "consumer": "someone", "outcome": "failed",
                                  "deliveries": "99", "reason": "planted", "dead_at": "never"}).decode()

    consumer = consumers(redis_url, stream, sim.url, "solo", "--until-empty", "--rate", "0",
                         "--claim-idle", "0.5", "--report", str(tmp_path / "local.csv"))
    assert consumer.wait(60) == 0, consumer.stderr()
    assert "Traceback" not in consumer.stderr()

    client = sync_client()
    entries = {e["job_id"]: e for e in results(client, stream)}
    assert set(entries) == {crashed, good_id, forged_id, *ids.values()}  # one answer each
    for label, (_changes, field) in HOSTILE.items():
        entry = entries[ids[label]]
        assert entry["outcome"] == "rejected", label
        assert field in entry["error_message"], (label, entry["error_message"])
        assert sum(len(k) + len(v) for k, v in entry.items()) < 10_000, label  # no copy of a huge field
    assert entries[crashed]["outcome"] == "rejected" and "line" in entries[crashed]["error_message"]
    assert entries[good_id]["outcome"] == "applied" and sim.sim.snapshots[good]["name"] == "good"
    assert entries[forged_id]["outcome"] == "applied" and entries[forged_id]["consumer"] == "solo"
    assert pending_count(client, stream) == 0 and client.xlen(stream) == 0
    assert len(read_report(tmp_path / "local.csv")) == len(entries)


def test_a_jobs_file_whose_name_is_not_utf8_is_queued_as_text_and_applied(
        sim_thread, redis_url, stream, consumers, tmp_path):
    sim = sim_thread(snapshots=2)
    targets = relabel_targets(sim.sim.snapshots, 2)
    jobs = write_jobs(tmp_path / os.fsdecode(b"jobs-\xff.csv"), targets)  # a Latin-1 file system
    enqueue(redis_url, stream, jobs, tmp_path)

    consumer = consumers(redis_url, stream, sim.url, "solo", "--until-empty", "--rate", "0")
    assert consumer.wait(60) == 0, consumer.stderr()
    entries = results(sync_client(), stream)  # decodes strictly: the entries are UTF-8 text
    assert {e["outcome"] for e in entries} == {"applied"} and len(entries) == 2
    assert {e["source"] for e in entries} == {str(tmp_path / "jobs-\ufffd.csv")}


# -- start-up: another group, keys of the wrong type, a Redis that answers errors -------------

def test_consume_refuses_a_stream_that_another_group_reads(
        sim_thread, redis_url, stream, consumers, tmp_path):
    sim = sim_thread(snapshots=3)
    targets = relabel_targets(sim.sim.snapshots, 3)
    enqueue(redis_url, stream, write_jobs(tmp_path / "jobs.csv", targets), tmp_path)  # group relabel
    client = sync_client()
    client.xgroup_create(stream, "audit", id="0")  # every group gets every job

    for group in ("relabel", "typo"):
        consumer = consumers(redis_url, stream, sim.url, group, "--group", group, "--until-empty")
        assert consumer.wait(60) == 2
        [line] = consumer.stderr().strip().splitlines()
        assert line.startswith("snaprelabel consume: error: ") and "--allow-other-groups" in line
        assert "'audit'" in line and f"'{group}'" in line
    assert not sim.sim.put_counts  # nothing sent
    assert sorted(g["name"] for g in client.xinfo_groups(stream)) == ["audit", "relabel"]  # no 'typo' left
    status = run_worker("queue", "status", "--redis", redis_url, "--stream", stream)
    assert f"other groups reading {stream}: audit (each applies every job once more)" in status.stdout

    consumer = consumers(redis_url, stream, sim.url, "allowed", "--until-empty", "--rate", "0",
                         "--allow-other-groups")
    assert consumer.wait(60) == 0, consumer.stderr()
    assert {e["outcome"] for e in results(client, stream)} == {"applied"}


def test_enqueue_warns_when_the_jobs_would_go_to_other_groups(redis_url, stream, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.csv", {GHOST: "x"})
    client = sync_client()
    client.xgroup_create(stream, "audit", id="0", mkstream=True)

    done = enqueue(redis_url, stream, jobs, tmp_path)  # group relabel: not created beside audit
    warning, _summary = done.stderr.strip().splitlines()
    assert warning.startswith("snaprelabel enqueue: warning: ") and "'audit'" in warning
    assert [g["name"] for g in client.xinfo_groups(stream)] == ["audit"]
    status = run_worker("queue", "status", "--redis", redis_url, "--stream", stream, "--json")
    assert json.loads(status.stdout)["other_groups"] == ["audit"]

    client.xgroup_create(stream, "relabel", id="0")
    done = enqueue(redis_url, stream, jobs, tmp_path)
    warning, summary = done.stderr.strip().splitlines()
    assert "'audit'" in warning and "'relabel'" in warning and "once per group" in warning
    assert done.returncode == 0 and "queued 1 jobs" in summary and client.xlen(stream) == 2


@pytest.mark.parametrize("key", ["jobs", "results", "dead", "errors"])
def test_a_queue_key_of_the_wrong_type_is_one_line_and_exit_2(
        sim_thread, redis_url, stream, consumers, tmp_path, key):
    sim = sim_thread(snapshots=1)
    base = stream.removesuffix(":jobs")
    sync_client().set(f"{base}:{key}", "not a stream")
    consumer = consumers(redis_url, stream, sim.url, "c", "--until-empty")
    assert consumer.wait(60) == 2
    [line] = consumer.stderr().strip().splitlines()
    assert line.startswith("snaprelabel consume: error: ") and f"{base}:{key} " in line, line
    assert not sim.sim.put_counts


@pytest.mark.parametrize("command", ["consume", "enqueue", "queue status"])
def test_a_redis_answering_errors_at_start_up_is_one_line_and_exit_2(error_redis, tmp_path, command):
    denied = error_redis(
        "DENIED Redis is running in protected mode because protected mode is enabled and no "
        "password is set for the default user. In this mode connections are only accepted from "
        "the loopback interface. If you want to connect from external computers ...")
    args = {"consume": ["consume", "--endpoint", "http://127.0.0.1:9"],
            "enqueue": ["enqueue", str(write_jobs(tmp_path / "jobs.csv", {GHOST: "x"})),
                        "--project-id", PROJECT, "--report", str(tmp_path / "r.csv")],
            "queue status": ["queue", "status"]}[command]
    done = run_worker(*args, "--redis", denied.url, "--redis-wait", "5")
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"snaprelabel {command.split()[0]}: error: Redis at {denied.url}")
    assert line.endswith("no password is set for the default user"), line  # its first sentence


# -- mid-job: results that cannot be written ------------------------------------------------

async def _held_job(url: str, stream: str, max_deliveries: int = 5) -> tuple[RedisLink, QueueConsumer, Job]:
    link = RedisLink(url, 10)
    names = QueueNames(stream, "relabel")
    await create_group(link, names)
    await link.client.xadd(stream, {"snapshot_id": GHOST, "project_id": PROJECT, "name": "x"})
    consumer = QueueConsumer(link, names, QueueOptions("c", max_deliveries=max_deliveries),
                             JobRules(PROJECT), Stop())
    job = await anext(consumer.rows())
    return link, consumer, job


async def test_a_results_key_turned_into_a_string_mid_job_acknowledges_nothing(redis_url, stream):
    link, consumer, job = await _held_job(redis_url, stream, max_deliveries=1)
    names, client = consumer.names, sync_client()
    await link.client.set(names.results, "not a stream")
    dead = from_job(job, Outcome.FAILED, http_status=503, attempts=2)  # its last delivery: a dead letter
    with pytest.raises(RedisRefused, match="WRONGTYPE"):
        await consumer.write_batch([dead])
    assert pending_count(client, stream) == 1 and client.xlen(names.dead) == 0

    await link.client.delete(names.results)
    await consumer.write_batch([from_job(job, Outcome.FAILED, http_status=503, attempts=2)])
    assert pending_count(client, stream) == 0
    assert client.xlen(names.dead) == 1 and len(results(client, stream)) == 1
    await link.close()


async def test_a_redis_at_maxmemory_leaves_the_job_pending_until_it_has_room(redis_server):
    server = redis_server(False)
    link, consumer, job = await _held_job(server.url, "full:jobs")
    client = sync_client(server.url)
    client.config_set("maxmemory", 1)  # every write that needs memory is refused (noeviction)
    with pytest.raises(RedisRefused, match="maxmemory"):
        await consumer.write_batch([from_job(job, Outcome.APPLIED, http_status=200, attempts=1)])
    client.config_set("maxmemory", 0)
    assert pending_count(client, "full:jobs") == 1 and client.xlen("full:results") == 0

    await consumer.write_batch([from_job(job, Outcome.APPLIED, http_status=200, attempts=1)])
    assert pending_count(client, "full:jobs") == 0
    assert [e["outcome"] for e in results(client, "full:jobs")] == ["applied"]
    await link.close()



def test_enqueue_into_a_redis_at_maxmemory_says_so_and_exits_4(redis_server, tmp_path):
    server = redis_server(False)
    client = sync_client(server.url)
    client.xgroup_create("full:jobs", "relabel", id="0", mkstream=True)
    client.config_set("maxmemory", 1)
    done = run_worker("enqueue", str(write_jobs(tmp_path / "jobs.csv", {GHOST: "x"})), "--redis",
                      server.url, "--stream", "full:jobs", "--project-id", PROJECT, "--report",
                      str(tmp_path / "r.csv"))
    assert done.returncode == 4
    error, summary = done.stderr.strip().splitlines()
    assert error.endswith("answered an error to 'queue jobs': command not allowed when used "
                          "memory > 'maxmemory'"), error
    assert summary.startswith("snaprelabel enqueue: queued 0 jobs")


# -- entries deleted from the stream while pending --------------------------------------------

async def test_a_job_deleted_from_the_stream_while_held_still_gets_its_result(redis_url, stream):
    link, consumer, job = await _held_job(redis_url, stream)
    await link.client.xdel(stream, job.ref.id)  # an operator's XDEL or XTRIM, mid-flight
    await consumer.heartbeat()  # an XCLAIM here would drop it from the pending list
    await consumer.write_batch([from_job(job, Outcome.APPLIED, http_status=200, attempts=1)])
    client = sync_client()
    assert [(e["job_id"], e["outcome"]) for e in results(client, stream)] == [(job.ref.id, "applied")]
    assert pending_count(client, stream) == 0
    await link.close()


async def test_a_dead_consumers_job_deleted_from_the_stream_leaves_nothing_behind(redis_url, stream):
    link = RedisLink(redis_url, 10)
    names = QueueNames(stream, "relabel")
    await create_group(link, names)
    client = link.client
    entry_id = await client.xadd(stream, {"snapshot_id": GHOST, "project_id": PROJECT, "name": "x"})
    await client.xreadgroup("relabel", "dead", {stream: ">"}, count=1)
    await client.hset(names.errors, entry_id, "HTTP 503: its last error")  # as a redelivery notes it
    await client.xdel(stream, entry_id)
    await asyncio.sleep(0.05)
    heir = QueueConsumer(link, names, QueueOptions("heir", claim_idle=0.01), JobRules(PROJECT),
                         Stop())
    assert await heir._claim_idle("0-0") == ("0-0", [])
    assert await client.hlen(names.errors) == 0 and pending_count(sync_client(), stream) == 0
    await link.close()


# -- a Redis that answers late ---------------------------------------------------------------

def test_a_redis_answering_after_the_socket_timeout_loses_no_result_and_doubles_none(
        sim_thread, redis_server, consumers, tmp_path):
    # Commands sent during the pause run when it ends, after the consumer gave up on their
    # answers (SOCKET_TIMEOUT): a commit retried, entries read or claimed whose reply was lost.
    server = redis_server(False)
    sim = sim_thread(snapshots=300, latency=0.02)
    targets = relabel_targets(sim.sim.snapshots, 300)
    enqueue(server.url, "slow:jobs", write_jobs(tmp_path / "jobs.csv", targets), tmp_path)
    client = sync_client(server.url)
    consumer = consumers(server.url, "slow:jobs", sim.url, "c", "--until-empty", "--rate", "0",
                         "--shared-rate", "100", "--claim-idle", "1", "--concurrency", "8")
    wait_for(lambda: client.xlen("slow:results") >= 30, 60, what="the job to be under way")
    client.client_pause(round((SOCKET_TIMEOUT + 1) * 1000))

    assert consumer.wait(120) == 0, consumer.stderr()
    entries = results(client, "slow:jobs")
    assert sorted(e["snapshot_id"] for e in entries) == sorted(targets)  # each once
    assert {e["outcome"] for e in entries} == {"applied"}
    assert pending_count(client, "slow:jobs") == 0 and client.xlen("slow:jobs") == 0
    assert any(e["event"] == "redis unreachable: reconnecting" for e in consumer.events())
    assert set(sim.sim.put_counts.values()) == {1}  # not even sent twice
