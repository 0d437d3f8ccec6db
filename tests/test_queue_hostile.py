"""Queue mode against hostile input: messages no producer of ours would write, XADDed directly
into a real Redis stream. Each must end as a `rejected` result (naming the field) and be
acknowledged; the stream goes on."""

from __future__ import annotations

import os

import redis

from helpers import PROJECT, read_report, relabel_targets, write_jobs
from queue_helpers import (  # noqa: F401 - fixtures
    consumers,
    enqueue,
    pending_count,
    redis_url,
    results,
    stream,
    sync_client,
    wait_for,
)

GHOST = "00000000-0000-4000-8000-000000000000"

# label -> (changes to a valid message, the field its rejection must name)
HOSTILE: dict[str, tuple[dict, str]] = {
    "superscript line": ({"line": "²"}, "line"),  # str.isdigit() is true, int() fails
    "line past int()'s digit limit": ({"line": "9" * 5000}, "line"),
    "negative line": ({"line": "-3"}, "line"),
    "no snapshot_id": ({"snapshot_id": None}, "snapshot_id"),
    "nothing to change": ({"name": None}, "name"),
    "huge name": ({"name": "n" * 1_000_000}, "name"),
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
