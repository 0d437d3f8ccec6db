"""The parts of queue mode in-process, against the real Redis: enqueue, the message format, the
shared rate limit, the commit that writes a result once."""

from __future__ import annotations

import asyncio
import csv
import math

import pytest

from helpers import PROJECT, write_jobs
from queue_helpers import (  # noqa: F401 - fixtures
    free_port,
    redis_server,
    redis_url,
    results,
    run_worker,
    stream,
    sync_client,
)
from worker.jobs import JobRules, Validator
from worker.queue.consumer import QueueConsumer, QueueOptions, create_group
from worker.queue.enqueue import Enqueuer
from worker.queue.redis_link import RedisLink
from worker.queue.shared_limit import MAX_SHARED_PAUSE, SHARED_PACING_MARGIN, Combined, SharedLimiter
from worker.queue.streams import QueueNames
from worker.rate import RateLimiter
from worker.report import ReportWriter
from worker.results import Outcome, from_job
from worker.sources import InputSpec, open_rows
from worker.stop import Stop

GHOST = "00000000-0000-4000-8000-000000000000"


def test_enqueue_rejects_bad_rows_to_the_report_and_queues_the_rest(redis_url, stream, tmp_path):
    ids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(3)]
    jobs = tmp_path / "jobs.csv"
    with jobs.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["snapshot_id", "name", "description", "previous_name"])
        out.writerows([[ids[0], "a", "", "old-a"], ["not-a-uuid", "b", "", ""],
                       [ids[1], "", "只改描述", ""], [ids[0], "dup", "", ""], [ids[2], "c", "", ""]])
    done = run_worker("enqueue", str(jobs), "--redis", redis_url, "--stream", stream,
                      "--project-id", PROJECT, "--report", str(tmp_path / "r.csv"))
    assert done.returncode == 1  # some rows rejected
    assert "queued 3 jobs" in done.stderr and "2 rows rejected" in done.stderr

    with (tmp_path / "r.csv").open(encoding="utf-8", newline="") as f:
        rejected = list(csv.DictReader(f))
    assert [(r["line"], r["outcome"], r["error_code"]) for r in rejected] == [
        ("3", "rejected", "invalid_uuid"), ("5", "rejected", "duplicate")]

    messages = [fields for _id, fields in sync_client().xrange(stream)]
    assert messages == [
        {"snapshot_id": ids[0], "project_id": PROJECT, "name": "a", "previous_name": "old-a",
         "source": str(jobs), "line": "2"},
        {"snapshot_id": ids[1], "project_id": PROJECT, "description": "只改描述",
         "source": str(jobs), "line": "4"},
        {"snapshot_id": ids[2], "project_id": PROJECT, "name": "c", "source": str(jobs), "line": "6"},
    ]
    # The group exists from the start, so a consumer started later reads every job.
    assert sync_client().xinfo_groups(stream)[0]["name"] == "relabel"


async def test_enqueue_waits_for_room_under_maxlen(redis_url, stream, tmp_path):
    targets = {f"{i:08x}-0000-4000-8000-000000000000": f"n{i}" for i in range(120)}
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    link = RedisLink(redis_url, 10)
    names = QueueNames(stream, "relabel")
    enqueuer = Enqueuer(link, names, maxlen=50)
    client = link.client
    longest = 0

    async def consume_slowly() -> None:
        nonlocal longest
        await asyncio.sleep(0.3)
        while True:
            longest = max(longest, await client.xlen(stream))
            entries = await client.xrange(stream, count=20)
            if entries:
                await client.xdel(stream, *[entry_id for entry_id, _ in entries])
            await asyncio.sleep(0.05)

    drain = asyncio.create_task(consume_slowly())
    report = ReportWriter(str(tmp_path / "r.csv"))
    with open_rows(InputSpec(str(jobs))) as rows:
        summary = await enqueuer.run(rows, Validator(JobRules(PROJECT)), "jobs.csv", report)
    report.close()
    drain.cancel()
    await link.close()
    assert summary.queued == 120 and summary.stopped is None
    assert longest <= 50


async def test_a_batch_sent_twice_is_queued_once(redis_url, stream):
    link = RedisLink(redis_url, 10)
    enqueuer = Enqueuer(link, QueueNames(stream, "relabel"))
    args = [0, 4, "snapshot_id", GHOST, "project_id", PROJECT]
    marker = f"{stream}:batch:retried"
    for _ in range(2):  # as after a connection lost before the first answer arrived
        assert await enqueuer._add(keys=[stream, marker], args=args) == 1
    assert await link.client.xlen(stream) == 1
    await link.close()


async def test_a_result_is_recorded_once_however_often_it_is_committed(redis_url, stream):
    """Two consumers that both finished an entry (one took it over from the other), or a commit
    retried after a lost answer: one result, one acknowledgement."""
    link = RedisLink(redis_url, 10)
    names = QueueNames(stream, "relabel")
    await create_group(link, names)
    await link.client.xadd(stream, {"snapshot_id": GHOST, "project_id": PROJECT, "name": "x"})
    sides = [QueueConsumer(link, names, QueueOptions(name, claim_idle=0.01), JobRules(PROJECT),
                           Stop()) for name in ("a", "b")]
    first = await anext(sides[0].rows())
    await asyncio.sleep(0.05)
    _cursor, (second,) = await sides[1]._claim_idle("0-0")
    assert second.ref.id == first.ref.id and second.ref.deliveries == 2

    for side, job in ((sides[1], second), (sides[0], first), (sides[1], second)):
        await side.write_batch([from_job(job, Outcome.APPLIED, http_status=200, attempts=1)])
    entries = results(sync_client(), stream)
    assert len(entries) == 1 and entries[0]["consumer"] == "b" and entries[0]["job_id"] == first.ref.id
    assert await link.client.xlen(stream) == 0
    await link.close()


async def test_the_shared_limit_paces_every_replica_on_one_schedule(redis_url, stream):
    link = RedisLink(redis_url, 10)
    key = f"{stream.removesuffix(':jobs')}:limit"
    rate = 50
    replicas = [SharedLimiter(link.client, key, rate, f"r{i}", throttled_backoff=1.0) for i in range(3)]
    loop = asyncio.get_running_loop()
    granted: list[float] = []

    async def send(limiter: SharedLimiter) -> None:
        for _ in range(10):
            await limiter.acquire()
            granted.append(loop.time())

    started = loop.time()
    await asyncio.gather(*(send(r) for r in replicas))
    granted.sort()
    interval = (1 + SHARED_PACING_MARGIN) / rate
    # 30 slots one interval apart: the last cannot come sooner (an upper bound on the rate).
    assert granted[-1] - started >= 29 * interval - 0.005
    assert {r.replicas for r in replicas} == {3}  # each knows how many share the limit
    await link.close()


async def test_a_429_seen_by_one_replica_pauses_them_all(redis_url, stream):
    link = RedisLink(redis_url, 10)
    key = f"{stream.removesuffix(':jobs')}:limit"
    seer, other = (SharedLimiter(link.client, key, 100, name, throttled_backoff=0.5)
                   for name in ("seer", "other"))
    await other.acquire()
    seer.observe(429, None)  # no Retry-After: the throttled backoff
    await asyncio.sleep(0.05)  # the pause reaches Redis
    loop = asyncio.get_running_loop()
    started = loop.time()
    await other.acquire()
    assert loop.time() - started >= 0.4
    await link.close()


async def test_without_redis_the_shared_limit_falls_back_to_a_local_share():
    link = RedisLink(f"redis://127.0.0.1:{free_port()}/0", 1)
    limiter = SharedLimiter(link.client, "nowhere", 20, "r0", throttled_backoff=1.0)
    limiter.replicas = 2  # as last counted, before Redis went away
    combined = Combined(RateLimiter(None), limiter)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(6):
        await combined.acquire()
    assert limiter.fallback is not None and limiter.fallback.rate == 10
    assert loop.time() - started >= 5 * (1 / 10) * 0.99  # 10/s: a share of the 20/s
    await link.close()


def test_consume_without_redis_url_is_one_line_and_exit_2(tmp_path):
    done = run_worker("consume", "--endpoint", "http://127.0.0.1:9", "--no-auth")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "snaprelabel consume: error: no Redis: give --redis redis://HOST:6379/0, --redis-url-file "
        "FILE or set SNAPRELABEL_REDIS_URL"]
    done = run_worker("consume", "--redis", "http://x", "--endpoint", "http://127.0.0.1:9")
    assert done.returncode == 2 and "setting redis_url" in done.stderr


def test_a_redis_password_never_shows(tmp_path):
    port = free_port()
    done = run_worker("queue", "status", "--redis", f"redis://:s3cret-pass@127.0.0.1:{port}/0",
                      "--redis-wait", "0.5", timeout=30)
    assert done.returncode == 4
    assert "unreachable" in done.stderr and "s3cret-pass" not in done.stderr + done.stdout
    assert "***@127.0.0.1" in done.stderr


def test_a_wrong_redis_password_is_a_setting_to_fix(redis_server):
    server = redis_server(False, "--requirepass", "right-pass-123")
    url = server.url.replace("redis://", "redis://:wrong-pass-456@")
    done = run_worker("queue", "status", "--redis", url)
    assert done.returncode == 2
    assert "refused our credentials" in done.stderr and "wrong-pass-456" not in done.stderr
    done = run_worker("queue", "status", "--redis", server.url.replace("redis://", "redis://:right-pass-123@"))
    assert done.returncode == 0 and "does not exist yet" in done.stdout


async def test_consumers_that_hold_nothing_are_forgotten_and_the_others_kept(redis_url, stream):
    link = RedisLink(redis_url, 10)
    names = QueueNames(stream, "relabel")
    await create_group(link, names)
    client = link.client
    for _ in range(2):
        await client.xadd(stream, {"snapshot_id": GHOST, "project_id": PROJECT, "name": "x"})
    for name in ("gone", "holder"):
        [(_, [(entry_id, _fields)])] = await client.xreadgroup("relabel", name, {stream: ">"}, count=1)
        if name == "gone":
            await client.xack(stream, "relabel", entry_id)
    sweeper = QueueConsumer(link, names, QueueOptions("sweeper"), JobRules(PROJECT), Stop())
    assert await sweeper.sweep(idle_over=0) == 1
    assert [c["name"] for c in await client.xinfo_consumers(stream, "relabel")] == ["holder"]
    await link.close()


@pytest.mark.parametrize("retry_after", [1e9, math.inf, math.nan])
async def test_a_huge_retry_after_pauses_the_replicas_at_most_the_maximum(redis_url, stream, retry_after):
    link = RedisLink(redis_url, 10)
    key = f"{stream.removesuffix(':jobs')}:limit"
    seer = SharedLimiter(link.client, key, 100, "seer", throttled_backoff=0.5)
    await seer.acquire()
    seer.observe(429, retry_after)  # one gateway's answer must not stop every replica for years
    client = link.client
    until = await wait_until(lambda: client.get(f"{key}:pause"))
    seconds, micros = await client.time()
    assert int(until) - (seconds * 1_000_000 + micros) <= MAX_SHARED_PAUSE * 1_000_000
    assert 0 < await client.pttl(f"{key}:pause") <= MAX_SHARED_PAUSE * 1000 + 1
    await link.close()


async def test_a_pause_planted_far_ahead_stops_a_new_replica_no_longer_than_the_maximum(redis_url, stream):
    link = RedisLink(redis_url, 10)
    key = f"{stream.removesuffix(':jobs')}:limit"
    client = link.client
    seconds, _micros = await client.time()
    # As an older replica would write it after a Retry-After of 1e9 s.
    await client.set(f"{key}:pause", (seconds + 10**9) * 1_000_000)
    newcomer = SharedLimiter(link.client, key, 100, "new", throttled_backoff=0.5, max_pause=0.2)
    await asyncio.wait_for(newcomer.acquire(), 60)  # a hang guard, not a measure
    seconds, micros = await client.time()
    until = await client.get(f"{key}:pause")  # cut down to the maximum, or over already
    assert until is None or int(until) - (seconds * 1_000_000 + micros) <= 200_000
    await link.close()


async def wait_until(probe, timeout: float = 10.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := await probe()):
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)
    return value


async def test_limit_keys_holding_garbage_or_the_wrong_type_do_not_stop_the_senders(redis_url, stream):
    link = RedisLink(redis_url, 10)
    key = f"{stream.removesuffix(':jobs')}:limit"
    client = link.client
    await client.set(f"{key}:pause", "soon")  # not a number: no pause
    await client.set(f"{key}:tat", "later")
    limiter = SharedLimiter(client, key, 100, "r0", throttled_backoff=0.5)
    await asyncio.wait_for(limiter.acquire(), 60)
    assert limiter.fallback is None and int(await client.get(f"{key}:tat")) > 0  # repaired

    await client.delete(f"{key}:tat")
    await client.hset(f"{key}:tat", "x", "1")  # WRONGTYPE: the local share, as when Redis is away
    await asyncio.wait_for(limiter.acquire(), 60)
    assert limiter.fallback is not None
    await client.delete(f"{key}:pause")
    await client.hset(f"{key}:pause", "x", "1")
    limiter.observe(429, 0.1)  # sharing the pause fails the same way, and raises nothing
    await asyncio.gather(*set(limiter._pauses))
    await link.close()
