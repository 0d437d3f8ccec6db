"""Several consumer processes on one stream, against the real Redis and the simulator: a replica
killed midway loses nothing and doubles nothing; replicas share one rate limit, every request of
theirs."""

from __future__ import annotations

import bisect
from collections import Counter

from helpers import PROJECT, relabel_targets, write_jobs
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
from worker.queue.shared_limit import limit_key


def test_a_replica_killed_midway_loses_nothing_and_doubles_nothing(
        sim_thread, redis_url, stream, consumers, tmp_path):
    sim = sim_thread(snapshots=5000, faults=["503:0.02", "reset:0.005", "reset-after:0.005"])
    targets = relabel_targets(sim.sim.snapshots, 5000)
    enqueue(redis_url, stream, write_jobs(tmp_path / "jobs.csv", targets), tmp_path)
    client = sync_client()

    flags = ("--until-empty", "--claim-idle", "2", "--rate", "0", "--shared-rate", "1000",
             "--log-level", "warning")
    victim, *survivors = [consumers(redis_url, stream, sim.url, f"c{i}", *flags) for i in range(3)]

    def victim_is_busy():
        done = client.xlen(stream.removesuffix(":jobs") + ":results")
        held = client.xpending_range(stream, "relabel", "-", "+", 1000, consumername="c0")
        return done >= 1000 and held

    wait_for(victim_is_busy, 60, what="the victim to hold jobs midway")
    victim.kill()
    assert victim.wait(10) == -9
    held = {p["message_id"] for p in client.xpending_range(stream, "relabel", "-", "+", 1000,
                                                           consumername="c0")}
    assert held, "the victim held no job when it died"

    for consumer in survivors:
        assert consumer.wait(90) == 0, consumer.stderr()

    entries = results(client, stream)
    assert len(entries) == 5000
    assert Counter(e["snapshot_id"] for e in entries) == Counter(targets.keys())  # each exactly once
    assert len({e["job_id"] for e in entries}) == 5000
    assert {e["outcome"] for e in entries} == {"applied"}
    by_job = {e["job_id"]: e for e in entries}
    assert {by_job[job]["consumer"] for job in held} <= {"c1", "c2"}  # the survivors took them
    assert pending_count(client, stream) == 0
    assert client.xlen(stream) == 0  # acknowledged entries are deleted
    # The survivors left the group as they finished; the dead one's name stays until swept.
    assert [c["name"] for c in client.xinfo_consumers(stream, "relabel")] == ["c0"]
    assert all(sim.sim.snapshots[sid]["name"] == name for sid, name in targets.items())


def test_replicas_share_one_rate_limit(sim_thread, redis_url, stream, consumers, tmp_path):
    rate, jobs = 30, 240
    sim = sim_thread(snapshots=jobs)
    targets = relabel_targets(sim.sim.snapshots, jobs)
    enqueue(redis_url, stream, write_jobs(tmp_path / "jobs.csv", targets), tmp_path)

    # Each replica alone may send `rate` per second: only the shared limit keeps the three
    # together under it.
    flags = ("--until-empty", "--rate", str(rate), "--shared-rate", str(rate),
             "--log-level", "warning")
    started = [consumers(redis_url, stream, sim.url, f"r{i}", *flags) for i in range(3)]
    for consumer in started:
        assert consumer.wait(90) == 0, consumer.stderr()

    arrivals = sorted(r.t_mono for r in sim.sim.requests if r.method == "PUT")
    assert len(arrivals) == jobs
    # Every one-second window starting at an arrival, on the server's clock: an upper bound.
    busiest = max(bisect.bisect_left(arrivals, t + 1.0) - i for i, t in enumerate(arrivals))
    assert busiest <= rate
    # Together they reach most of the limit once all three run (the first and last 20 requests
    # include process start-up and the drain).
    steady = arrivals[20:-20]
    achieved = (len(steady) - 1) / (steady[-1] - steady[0])
    assert achieved >= 0.7 * rate, f"{achieved:.1f} requests/s under a shared limit of {rate}"
    by_consumer = Counter(e["consumer"] for e in results(sync_client(), stream))
    assert set(by_consumer) == {"r0", "r1", "r2"} and sum(by_consumer.values()) == jobs


def test_the_credential_check_waits_its_turn_under_the_shared_limit(sim_thread, redis_url, stream, consumers,
                                                                     tmp_path):
    # Every request counts against the quota the replicas share, the GET that proves the
    # credentials too. Sent outside the shared limit, three replicas' GETs took slots of the
    # quota's first second that the shared learning never saw (it counted 97 of 100).
    sim = sim_thread(snapshots=5)
    targets = relabel_targets(sim.sim.snapshots, 5)
    enqueue(redis_url, stream, write_jobs(tmp_path / "jobs.csv", targets), tmp_path)
    client = sync_client(redis_url)
    seconds, micros = client.time()
    until = seconds + micros / 1e6 + 3.0  # a pause another replica's 429 set, on the Redis clock
    client.set(f"{limit_key(sim.url, PROJECT)}:pause", f"{until * 1e6:.0f}", px=10_000)

    consumer = consumers(redis_url, stream, sim.url, "r0", "--until-empty", "--shared-rate", "20",
                         "--project-id", PROJECT)
    assert consumer.wait(60) == 0, consumer.stderr()

    requests = sorted(sim.sim.requests, key=lambda r: r.t_wall)
    assert [r.method for r in requests] == ["GET"] + ["PUT"] * len(targets)
    early = until - requests[0].t_wall
    assert early <= 0.005, f"the GET went {early:.2f} s before the pause ended"
    assert all(sim.sim.snapshots[sid]["name"] == name for sid, name in targets.items())
