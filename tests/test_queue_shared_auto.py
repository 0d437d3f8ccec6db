"""--rate auto in queue mode: replicas that share a quota share what is learnt of it (one learning,
on Redis, fed by every replica's requests), against the real Redis and the simulator's quota."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter

import pytest

from helpers import relabel_targets, write_jobs
from queue_helpers import (  # noqa: F401 - fixtures
    consumers,
    enqueue,
    free_port,
    redis_url,
    results,
    stream,
    sync_client,
    wait_for,
)
from worker.queue.redis_link import RedisLink
from worker.queue.shared_auto import APPLY, Outcomes, SharedLearning, SharedSchedule, _learned, parse_events
from worker.queue.shared_limit import OWN_429_HOLD, SharedLimiter
from worker.quota import Quota
from worker.rate import AdaptiveRateLimiter

TAKEN_OVER = "shared rate learning: taken over"
AUTO = ("--until-empty", "--claim-idle", "2", "--rate", "auto", "--log-level", "info")


def _throttled_share(sim) -> float:
    stats = sim.sim.quota.stats()
    return stats["throttled"] / (stats["accepted"] + stats["throttled"])


def test_three_replicas_take_a_stated_quota_once_for_all(sim_thread, redis_url, stream, consumers, tmp_path):
    # 429s say `limit:40,time:1 second`. Each replica learning alone would hold just under 40/s:
    # 120/s together, two requests in three refused. Learning together, the three hold 40/s.
    sim = sim_thread(snapshots=400, quota="40/s")
    targets = relabel_targets(sim.sim.snapshots, 400)
    enqueue(redis_url, stream, write_jobs(tmp_path / "jobs.csv", targets), tmp_path)
    started = [consumers(redis_url, stream, sim.url, f"r{i}", *AUTO) for i in range(3)]
    for consumer in started:
        assert consumer.wait(120) == 0, consumer.stderr()

    entries = results(sync_client(), stream)
    assert Counter(e["snapshot_id"] for e in entries) == Counter(targets.keys())
    assert {e["outcome"] for e in entries} == {"applied"}
    assert all(sim.sim.snapshots[sid]["name"] == name for sid, name in targets.items())
    assert _throttled_share(sim) < 0.15, sim.sim.quota.stats()
    # One replica learnt at a time; one that finished first handed over what it had learnt.
    takeovers = sorted((e for c in started for e in c.events() if e["event"] == TAKEN_OVER),
                       key=lambda e: e["timestamp"])
    assert takeovers and all(e["ceiling"] == 40.0 for e in takeovers[1:]), takeovers


def test_a_learner_killed_hands_over_what_it_learnt(sim_thread, redis_url, stream, consumers, tmp_path):
    sim = sim_thread(snapshots=800, quota="40/s")
    targets = relabel_targets(sim.sim.snapshots, 800)
    enqueue(redis_url, stream, write_jobs(tmp_path / "jobs.csv", targets), tmp_path)
    started = {f"r{i}": consumers(redis_url, stream, sim.url, f"r{i}", *AUTO) for i in range(3)}
    client = sync_client()

    def learner():
        for name, consumer in started.items():
            if any(e["event"] == TAKEN_OVER for e in consumer.events()):
                return name
        return None

    wait_for(lambda: learner() and client.xlen(stream.removesuffix(":jobs") + ":results") >= 200, 60,
             what="a learner and 200 jobs done")
    first = learner()
    started[first].kill()
    assert started.pop(first).wait(10) == -9
    for consumer in started.values():
        assert consumer.wait(120) == 0, consumer.stderr()

    # A survivor took over (and, if it finished first, handed over again to the last one): each
    # went on from the stated quota, not from slow start's 10/s.
    successors = [e for c in started.values() for e in c.events() if e["event"] == TAKEN_OVER]
    assert successors, "no survivor took the learning over"
    assert all(e["ceiling"] == 40.0 and e["rate"] > 30 for e in successors), successors
    entries = results(client, stream)
    assert Counter(e["snapshot_id"] for e in entries) == Counter(targets.keys())
    assert {e["outcome"] for e in entries} == {"applied"}


async def _learning(learner: SharedLearning) -> None:
    """Until the learner holds the lease."""
    while learner.learning is None:
        await asyncio.sleep(0.01)


async def _learnt_ceiling(learner: SharedLearning) -> float | None:
    """The ceiling its learning sets, waited for up to two seconds."""
    assert learner.learning is not None
    for _ in range(200):
        if learner.learning.ceiling is not None:
            break
        await asyncio.sleep(0.01)
    return learner.learning.ceiling


async def test_the_ramps_count_waits_for_every_replicas_answers(redis_url, stream):
    # One replica's 429 reaches Redis at once, another's answers up to FLUSH_EVERY later. Counted
    # without them, the end of the ramp took 91 and 92 for a quota of 100 (then held 89/s).
    link = RedisLink(redis_url, 10)
    client, key = link.client, stream.removesuffix(":jobs") + ":limit"
    mine, theirs = Outcomes(), Outcomes()
    learner = SharedLearning(client, key, "r0", mine)
    tasks = [asyncio.create_task(learner.run())]
    try:
        await _learning(learner)
        tasks.append(asyncio.create_task(SharedLearning(client, key, "r1", theirs).run()))
        seconds, micros = await client.time()
        now = seconds + micros / 1e6
        for i in range(100):
            theirs.answered(now - 0.5 + i * 0.005, 200, None, None)
        mine.answered(now, 429, None, None)
        assert await _learnt_ceiling(learner) == 100
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await link.close()


async def test_a_new_learning_counts_what_the_replicas_flushed_before_it_took_the_lease(redis_url, stream):
    # The replicas' first requests (their credential checks) are answered and flushed before any
    # of them holds the lease; they took slots of the quota's second all the same. The learning
    # began at the stream's last entry: it counted 97 of 100 at the ramp's first 429.
    link = RedisLink(redis_url, 10)
    client, key = link.client, stream.removesuffix(":jobs") + ":limit"
    seconds, micros = await client.time()
    now = seconds + micros / 1e6
    theirs, mine = Outcomes(), Outcomes()
    for i in range(3):
        theirs.granted(now - 0.62 + i * 0.01)
        theirs.answered(now - 0.6 + i * 0.01, 200, None, None)
    await client.xadd(f"{key}:outcomes", {"e": ";".join(theirs.take())})  # as a replica flushes
    learner = SharedLearning(client, key, "r0", mine)
    task = asyncio.create_task(learner.run())
    try:
        await _learning(learner)
        for i in range(97):
            mine.answered(now - 0.5 + i * 0.005, 200, None, None)
        mine.answered(now, 429, None, None)
        assert await _learnt_ceiling(learner) == 100
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await link.close()


def _schedule_in(redis_url: str, stream: str):
    """A link to Redis, the shared limit's key, and the learning's APPLY with the schedule's keys."""
    link = RedisLink(redis_url, 10)
    key = stream.removesuffix(":jobs") + ":limit"
    return link, key, link.client.register_script(APPLY), [f"{key}:interval", f"{key}:not-before", f"{key}:tat"]


async def test_a_replica_asleep_on_a_trickles_slot_takes_a_sooner_one_when_the_pace_speeds_up(redis_url, stream):
    # A closed window's try is booked with the try's spacing after it: the next replica's slot
    # was that far off, and when the try was taken and the learning set the pace again, every
    # replica slept on to its old slot (0.65 s lost at 100/s, three replicas).
    link, key, apply, schedule = _schedule_in(redis_url, stream)
    client = link.client
    await apply(keys=schedule, args=[3_000_000, "", 60_000])  # the trickle: a slot every 3 s
    limiter = SharedLimiter(client, key, None, "r0", throttled_backoff=0.0)
    try:
        await asyncio.wait_for(limiter.acquire(), 10)  # the try's slot, now
        started = time.monotonic()
        waiting = asyncio.create_task(limiter.acquire())  # booked 3 s on
        await asyncio.sleep(0.3)
        assert not waiting.done()
        seconds, micros = await client.time()
        await apply(keys=schedule, args=[10_000, f"{seconds * 1e6 + micros + 10_000:.0f}", 60_000])  # reopened
        await asyncio.wait_for(waiting, 10)
        assert time.monotonic() - started < 1.5
    finally:
        await link.close()


async def test_a_replica_that_hears_a_429_takes_no_slot_until_the_learning_has_heard_it(redis_url, stream):
    # The learning holds every replica once it reads the 429 (up to FLUSH_EVERY + LEARN_WAIT
    # later); the replica that heard it sent on meanwhile: at the end of the ramp of 240 per 20 s,
    # 25-29 requests refused within 10 ms, three replicas (5 with the hold).
    link, key, apply, schedule = _schedule_in(redis_url, stream)
    client = link.client
    await apply(keys=schedule, args=[1_000, "", 60_000])  # 1,000/s
    outcomes = Outcomes()
    limiter = SharedLimiter(client, key, None, "r0", throttled_backoff=0.0, outcomes=outcomes)
    loop = asyncio.get_running_loop()
    try:
        for _ in range(3):
            await asyncio.wait_for(limiter.acquire(), 10)
        limiter.observe(429, None)
        heard = loop.time()
        await asyncio.wait_for(limiter.acquire(), 10)
        assert loop.time() - heard >= OWN_429_HOLD
        # It tells the learning as before: three grants and the 429.
        events = parse_events(";".join(outcomes.take()))
        assert [e[1] for e in events if isinstance(e, tuple)] == [429]
        assert sum(isinstance(e, float) for e in events) == 4
    finally:
        await link.close()


async def test_slow_starts_faster_pace_is_taken_at_once_not_after_the_slots_booked_at_the_old_one(redis_url, stream):
    # Each replica holds a slot booked at the old pace, up to three old intervals ahead: when the
    # learning doubled the pace, the next slot still came after them, and a 100/s quota's ramp
    # sent 10/s for half a second (its rounds unused, so it did not double either).
    link, key, apply, schedule_keys = _schedule_in(redis_url, stream)
    client = link.client
    schedule = SharedSchedule()

    async def learnt(rate: float) -> None:
        seconds, micros = await client.time()
        schedule.time = seconds + micros / 1e6
        schedule.speed_up(rate)
        change = schedule.take(ramping=True)
        assert change is not None
        interval, not_before = change
        await apply(keys=schedule_keys, args=[round(interval * 1e6),
                                              "" if not_before is None else f"{not_before * 1e6:.0f}", 60_000])

    replicas = [SharedLimiter(client, key, None, f"r{i}", throttled_backoff=0.0) for i in range(3)]
    try:
        await learnt(10.0)
        await asyncio.wait_for(replicas[0].acquire(), 10)  # now
        booked = [asyncio.create_task(r.acquire()) for r in replicas[1:]]  # 0.1 and 0.2 s on
        await asyncio.sleep(0.02)
        await learnt(160.0)  # slow start doubled, and again: 6 ms apart from now
        started = time.monotonic()
        await asyncio.wait_for(replicas[0].acquire(), 10)
        assert time.monotonic() - started < 0.1  # not after the booked slots (0.3 s from the first)
        await asyncio.wait_for(asyncio.gather(*booked), 10)
    finally:
        await link.close()


def test_outcomes_round_trip_and_foreign_entries_are_skipped():
    outcomes = Outcomes()
    outcomes.granted(1000.25)
    outcomes.answered(1000.5, 429, 1.0, Quota(600, 60))
    outcomes.answered(1000.75, None, None, None)
    text = ";".join(outcomes.take())
    assert outcomes.take() == []
    assert parse_events(text) == [1000.25, (1000.5, 429, 1.0, Quota(600, 60), None),
                                  (1000.75, None, None, None, None)]
    # Another program's entries, or ours mangled: skipped, never an exception.
    junk = ["", "x", "g", "gnan", "ginf", "a1,2", "a1,abc,,,", "a1,200,,0,60", "a1,200,,-5,1e400",
            json.dumps({"a": 1}), "a1,429,,,", "g12.5", "sabc", "a2,200,,,"]
    assert parse_events(";".join(junk)) == [(1.0, 200, None, None, None), (1.0, 200, None, None, None),
                                            (1.0, 429, None, None, None), 12.5, (2.0, 200, None, None, None)]


def test_the_servers_second_of_each_answer_is_written_when_it_changes():
    outcomes = Outcomes()
    for at, second in ((1.0, 1796400000), (1.1, 1796400000), (1.2, 1796400001), (1.3, None)):
        outcomes.answered(at, 200, None, None, second)
    first = outcomes.take()
    outcomes.answered(1.4, 429, None, None, 1796400001)  # each batch says it again
    second = outcomes.take()
    assert sum(e.startswith("s") for e in first) == 3 and second[0] == "s1796400001"
    events = parse_events(";".join(first)) + parse_events(";".join(second))
    assert [e[4] for e in events if not isinstance(e, float)] == [1796400000, 1796400000, 1796400001, None,
                                                                 1796400001]


async def test_without_redis_a_replica_goes_on_learning_alone():
    link = RedisLink(f"redis://127.0.0.1:{free_port()}/0", 1)
    outcomes = Outcomes()
    limiter = SharedLimiter(link.client, "nowhere", None, "r0", throttled_backoff=0.0, outcomes=outcomes)
    limiter.replicas = 2  # as last counted, before Redis went away
    await limiter.acquire()
    assert isinstance(limiter.fallback, AdaptiveRateLimiter)
    assert limiter.fallback.rate == AdaptiveRateLimiter.START / 2  # its share of the shared pace
    limiter.observe(429, None, Quota(4, 1))
    assert limiter.fallback.ceiling == 4.0  # it learns from its own 429s meanwhile
    assert outcomes.take() == []  # and tells no learning that cannot hear
    await link.close()


@pytest.mark.parametrize("interval", ["0", "-5", "abc", "1e999"])
async def test_a_garbage_interval_in_redis_keeps_the_pace_within_bounds(redis_url, stream, interval):
    link = RedisLink(redis_url, 10)
    key = f"{stream.removesuffix(':jobs')}:limit"
    client = link.client
    await client.set(f"{key}:interval", interval)
    seconds, _micros = await client.time()
    await client.set(f"{key}:not-before", (seconds + 10**9) * 1_000_000)  # a billion seconds ahead
    limiter = SharedLimiter(client, key, None, "r0", throttled_backoff=0.0, max_pause=0.2)
    await asyncio.wait_for(limiter.acquire(), 30)  # a hang guard, not a measure
    assert AdaptiveRateLimiter.FLOOR * 0.99 <= limiter.rate <= AdaptiveRateLimiter.MAX * 1.01  # (µs rounding)
    await link.close()


@pytest.mark.parametrize("saved", [b"[1, 2]", b"not json", b'{"rate": -1, "ceiling": "x", "pace": 1e400}',
                                   b'{"rate": 1e9, "confirmed": true, "probe_gap": -3}'])
def test_what_a_predecessor_saved_is_bounded_whatever_it_is(saved):
    limiter = AdaptiveRateLimiter.going_on(_learned(saved), SharedSchedule())
    assert AdaptiveRateLimiter.FLOOR <= limiter.rate <= AdaptiveRateLimiter.MAX
    assert limiter.ceiling is None and limiter.pace is None and limiter.probe_gap >= 0


def test_an_idle_learner_stops_at_once_on_sigterm(sim_thread, redis_url, stream, consumers):
    # It hung for good: cancelled inside a blocking XREAD once redis-py's connections had idled
    # past their 15 s health check.
    sim = sim_thread(snapshots=1)
    consumer = consumers(redis_url, stream, sim.url, "r0", "--rate", "auto", "--log-level", "info")
    wait_for(lambda: any(e["event"] == TAKEN_OVER for e in consumer.events()), 30, what="the learner")
    time.sleep(20)
    consumer.kill(signal.SIGTERM)
    assert consumer.wait(30) == 143, consumer.stderr()
