"""`--rate auto` and `--concurrency auto`: the pacer and the adaptive limiter driven by a fake clock, the sizing
arithmetic, the settings and flags, and whole jobs against the simulator's hidden limit."""

from __future__ import annotations

import asyncio
import random
import statistics
from bisect import bisect_left
from collections import deque

import pytest

from helpers import FAST, PROJECT, TOKEN, read_report, relabel_targets, run_cli, write_jobs
from worker import concurrency
from worker.concurrency import ConcurrencySizer, size_for
from worker.rate import (
    BURST,
    PACING_MARGIN,
    SPREAD,
    TIMER_TICK,
    AdaptiveRateLimiter,
    Pacer,
    RateLimiter,
    make_limiter,
)
from worker.runner import JobSpec, run_job
from worker.settings import ConfigError, load_settings
from worker.simulator.faults import SlidingWindowLimiter
from worker.sources import InputSpec


class FakeClock:
    """Time that moves only when the limiter sleeps or the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(clock: FakeClock, start: float = 10.0) -> AdaptiveRateLimiter:
    return AdaptiveRateLimiter(start, clock=clock.time, sleep=clock.sleep)


async def send(lim: AdaptiveRateLimiter, clock: FakeClock, seconds: float,
               status: int = 200) -> int:
    """Every slot the limiter grants for `seconds`, each answered at once with `status`."""
    end = clock.now + seconds
    sent = 0
    while clock.now < end:
        await lim.acquire()
        lim.observe(status, None)
        sent += 1
    return sent


async def cut_once(clock: FakeClock, start: float = 100.0) -> AdaptiveRateLimiter:
    """A limiter past its ramp (a ceiling far above, from before) that sent at `start` for a
    tenth of a second, then saw a 429: a cut. (The ramp's own first 429 counts the quota:
    tests/test_quota_shapes.py.)"""
    lim = limiter(clock, start)
    lim.ceiling = 10 * start
    await send(lim, clock, 0.09)
    lim.observe(429, None)
    return lim


async def test_slow_start_doubles_the_rate_each_twentieth_of_a_second_while_every_slot_is_used():
    clock = FakeClock()
    lim = limiter(clock)
    await send(lim, clock, 0.225)
    assert lim.ceiling is None
    assert lim.rate == 80  # 10 -> 20 -> 40 -> 80


async def test_slow_start_waits_for_a_few_answers_latency_between_doublings():
    """Answers 50 ms late: rounds of four latencies (0.2 s), so that little is in flight when
    the first 429 comes; answers at once reach eight times the rate in the same time."""
    rates = {}
    for latency in (0.0, 0.05):
        clock = FakeClock()
        lim = limiter(clock)
        pending: deque[float] = deque()
        end = clock.now + 0.9
        while clock.now < end:
            await lim.acquire()
            pending.append(clock.now)
            while pending and clock.now - pending[0] >= latency:
                pending.popleft()
                lim.observe(200, None)
        rates[latency] = lim.rate
    assert lim.latency >= 0.05
    assert rates[0.05] <= 160 and rates[0.0] >= 8 * rates[0.05]


async def test_the_rate_does_not_grow_when_the_job_does_not_use_it():
    clock = FakeClock()
    lim = limiter(clock)
    for _ in range(10):  # one request a second: the limit is not what holds the job back
        await lim.acquire()
        lim.observe(200, None)
        clock.now += 1.0
    assert lim.rate == 10


async def test_a_429_cuts_to_nine_tenths_of_what_the_server_accepted_once_per_hold():
    clock = FakeClock()
    lim = await cut_once(clock)  # ~100 accepted a second
    assert 85 <= lim.rate <= 91
    assert 95 <= lim.ceiling <= 101
    cut = lim.rate
    for _ in range(20):  # answers to requests sent before the cut
        lim.observe(429, None)
    assert lim.rate == cut


async def serve(lim: AdaptiveRateLimiter, clock: FakeClock, seconds: float,
                quota: SlidingWindowLimiter) -> tuple[int, int]:
    """Send for `seconds` to a server that takes `quota.rate` a second (the simulator's own
    window, on the fake clock): (accepted, refused)."""
    end = clock.now + seconds
    accepted = refused = 0
    while clock.now < end:
        await lim.acquire()
        if quota.admit(clock.now):
            accepted += 1
            lim.observe(200, None)
        else:
            refused += 1
            lim.observe(429, None)
    return accepted, refused


async def test_a_quota_that_drops_tenfold_is_matched_in_one_step():
    clock = FakeClock()
    lim = limiter(clock, start=1000.0)
    await send(lim, clock, 0.95)
    accepted, refused = await serve(lim, clock, 3.0, SlidingWindowLimiter(100))
    assert lim.rate <= 100
    assert refused < 1000  # under a second's worth at the old rate


@pytest.mark.parametrize("quota", [10, 100, 1000])
async def test_it_finds_and_holds_a_hidden_quota(quota):
    clock = FakeClock()
    lim = limiter(clock)
    seconds = 120
    accepted, refused = await serve(lim, clock, seconds, SlidingWindowLimiter(quota))
    assert accepted >= 0.85 * quota * seconds  # slow start included
    assert refused <= 0.02 * (accepted + refused)
    # The ceiling is the rate a probe reached: paced PACING_MARGIN under it, just past the quota.
    assert lim.ceiling is not None and lim.ceiling <= quota * (1 + PACING_MARGIN) * (1 + AdaptiveRateLimiter.STEP)


async def test_it_follows_a_quota_that_falls_then_rises():
    clock = FakeClock()
    lim = limiter(clock)
    await serve(lim, clock, 30, SlidingWindowLimiter(100))
    accepted, refused = await serve(lim, clock, 30, SlidingWindowLimiter(50))
    # At most a probe's step past it (the pace is PACING_MARGIN under the rate).
    assert lim.rate <= 50 * 1.05 and accepted >= 0.85 * 50 * 30
    accepted, refused = await serve(lim, clock, 30, SlidingWindowLimiter(200))
    assert lim.rate >= 0.85 * 200 and accepted >= 0.6 * 200 * 30  # the climb takes seconds
    assert refused <= 0.02 * (accepted + refused)


async def test_after_a_429_the_rate_climbs_slowly_and_stays_under_the_quota_it_found():
    clock = FakeClock()
    lim = await cut_once(clock)
    ceiling, cut = lim.ceiling, lim.rate
    await send(lim, clock, 3.0)
    # At most 2% of the ceiling a second, and the first second is the hold.
    assert cut < lim.rate <= cut + 3 * 0.02 * ceiling + 1e-9
    assert lim.rate < ceiling


async def test_past_the_old_quota_without_a_429_the_climb_speeds_up():
    clock = FakeClock()
    lim = await cut_once(clock)
    ceiling = lim.ceiling
    await send(lim, clock, 12.0)  # the quota was raised: no more 429s
    assert lim.rate > 1.5 * ceiling


async def test_retry_after_holds_every_sender_until_it_passes():
    clock = FakeClock()
    lim = limiter(clock, start=50.0)
    await send(lim, clock, 0.5)
    told = clock.now
    lim.observe(429, 3.0)
    await lim.acquire()
    assert clock.now >= told + 3.0


async def test_a_cut_rebooks_slots_taken_at_the_old_pace():
    clock = FakeClock()
    lim = await cut_once(clock)
    before = clock.now
    for _ in range(10):
        await lim.acquire()
    # Ten slots at the new pace (about 90/s), not the old one.
    assert clock.now - before >= 9 * (1 / lim.rate)


def test_make_limiter_follows_the_rate_setting():
    assert isinstance(make_limiter("auto"), AdaptiveRateLimiter)
    fixed = make_limiter(20.0)
    assert isinstance(fixed, RateLimiter) and fixed.rate == 20.0
    assert make_limiter(0).rate is None


# -- concurrency sizing ------------------------------------------------------------------------


@pytest.mark.parametrize("rate, latency, expected", [
    (200, 0.375, 77),  # Little's law: 75 in flight, plus 2 spare
    (20, 0.05, concurrency.MIN),  # never fewer than MIN
    (2000, 1.0, concurrency.MAX),  # never more than MAX
    (None, 0.25, concurrency.UNLIMITED),  # no rate limit: nothing to size from
    (0, 5.0, concurrency.UNLIMITED),
])
def test_size_for(rate, latency, expected):
    assert size_for(rate, latency) == expected


def test_the_sizer_plans_for_slow_answers_and_follows_the_rate_of_the_moment():
    rate = [100.0]
    sizer = ConcurrencySizer(lambda: rate[0])
    assert sizer.target == size_for(100, concurrency.FIRST_GUESS * concurrency.HEADROOM)
    for _ in range(200):  # steady answers: half again the average latency
        sizer.observe(0.2)
    assert sizer.target == size_for(100, 0.2 * concurrency.HEADROOM)
    for _ in range(100):  # answers that swing between 0.1 and 0.5 s: plan for the slow ones
        sizer.observe(0.1)
        sizer.observe(0.5)
    assert sizer.planned_latency > 0.45
    assert sizer.target == size_for(100, sizer.planned_latency) > size_for(100, 0.45)
    rate[0] = 400.0
    assert sizer.target == size_for(400, sizer.planned_latency)


def test_senders_are_kept_until_a_lower_target_has_lasted():
    rate = [100.0]
    sizer = ConcurrencySizer(lambda: rate[0])
    for _ in range(50):
        sizer.observe(0.5)
    high = sizer.keep(now=0.0)
    assert high == sizer.target == size_for(100, sizer.planned_latency)
    rate[0] = 10.0  # the target falls: the senders stay for a while
    assert sizer.target < high
    assert sizer.keep(now=1.0) == high
    assert sizer.keep(now=concurrency.SHRINK_AFTER - 0.01) == high
    assert sizer.keep(now=concurrency.SHRINK_AFTER + 0.01) == sizer.target < high
    rate[0] = 200.0  # and a rise is followed at once
    assert sizer.keep(now=concurrency.SHRINK_AFTER + 0.02) == sizer.target > high


def _pipeline(sizer: ConcurrencySizer, rate: float, capacity: float, service: float,
              seconds: float, start: float) -> list[int]:
    """Senders kept, every 50 ms, in front of a pipeline (a core, a server) that delivers
    `capacity` a second and answers in `service` s. Asked for less, it answers at once; asked
    for more, every sender is busy and each answer waits behind the others: N / capacity s."""
    kept, now = [], start
    while now < start + seconds:
        senders = sizer.keep(now)
        latency = service if rate < capacity else max(service, senders / capacity)
        for i in range(int(min(rate, capacity) * 0.05)):
            sizer.observe(latency * (1 + 0.1 * (i % 4)))
        kept.append(senders)
        now += 0.05
    return kept


def test_a_queue_every_answer_waits_in_adds_no_senders():
    """--rate auto's slow start asks 5,000/s of a client that delivers 3,000/s: each sender added
    lengthens the queue, and sizing from that latency fed on itself up to MAX."""
    rate = [1000.0]
    sizer = ConcurrencySizer(lambda: rate[0])
    _pipeline(sizer, 1000.0, 3000.0, 0.001, 3.0, 0.0)  # 1,000/s: 1 ms answers, no queue
    rate[0] = 5000.0
    kept = _pipeline(sizer, 5000.0, 3000.0, 0.001, 3.0, 3.0)
    # What 5,000/s needs at up to thrice the unqueued latency: the queue adds nothing.
    assert max(kept) <= size_for(5000, 3 * 0.0013 * concurrency.HEADROOM) < concurrency.MAX / 10
    assert kept[-1] >= size_for(3000, 0.001)  # and enough to keep the pipeline full


@pytest.mark.parametrize("spread", [
    lambda rng: rng.uniform(0.02, 0.1),  # an API's answers, five to one
    lambda rng: rng.lognormvariate(-3, 0.8),  # a long tail: a twentieth over 3.7 times the median
])
def test_a_spread_of_latencies_is_not_taken_for_a_queue(spread):
    rng = random.Random(7)
    sizer = ConcurrencySizer(lambda: 200.0)
    shares = []
    for tick in range(400):  # 20 s at 200/s
        samples = [spread(rng) for _ in range(10)]
        for latency in samples:
            sizer.observe(latency)
        sizer.keep(tick * 0.05)
        shares.append(sizer.unqueued)
    assert min(shares) >= 0.6 and statistics.mean(shares) >= 0.98


def test_quick_errors_are_not_taken_for_the_unqueued_latency():
    """Rows the API answers at once (a 404, a 429), then rows it applies in 50 ms: the 50 ms are
    the work, not a queue."""
    sizer = ConcurrencySizer(lambda: 100.0)
    for tick in range(40):
        for _ in range(5):
            sizer.observe(0.001, applied=False)
        sizer.keep(tick * 0.05)
    for tick in range(40, 100):
        for _ in range(5):
            sizer.observe(0.05)
        sizer.keep(tick * 0.05)
    assert sizer.unqueued == 1.0
    assert sizer.target >= size_for(100, 0.05 * concurrency.HEADROOM)


# -- pacing -----------------------------------------------------------------------------------


class YieldingClock(FakeClock):
    """A fake clock whose sleep lets the other tasks run first, as a real one does."""

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)
        await super().sleep(seconds)


async def test_many_waiters_are_let_through_one_interval_apart_in_order():
    clock = YieldingClock()
    pacer = Pacer(100.0, clock=clock.time, sleep=clock.sleep)
    granted: list[tuple[int, float]] = []

    async def waiter(i: int) -> None:
        await pacer.wait()
        granted.append((i, clock.now))

    await asyncio.gather(*(waiter(i) for i in range(300)))
    assert [i for i, _ in granted] == list(range(300))  # first come, first served
    times = [t for _, t in granted]
    # Never ahead of the even schedule by more than the burst allowance...
    for k, t in enumerate(times):
        assert t >= times[0] + k * pacer.interval - BURST - 1e-9
    # ...so no one-second window holds more than the rate, and the rate is kept.
    assert max(bisect_left(times, t + 1.0) - k for k, t in enumerate(times)) <= 100
    assert times[-1] - times[0] <= 299 * pacer.interval + TIMER_TICK


class LateClock(YieldingClock):
    """Every sleep overruns by up to `late` seconds, as on a busy loop (seeded)."""

    def __init__(self, late: float) -> None:
        super().__init__()
        self.late = late
        self.rng = random.Random(13)

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds + self.rng.uniform(0, self.late))


def busiest(times: list[float], window: float) -> int:
    return max(bisect_left(times, t + window) - k for k, t in enumerate(times))


@pytest.mark.parametrize("rate", [20.0, 200.0, 333.0, 2000.0])
@pytest.mark.parametrize("late", [0.0, 0.003, 0.02])
async def test_waiters_close_together_share_a_wake_up_and_no_second_holds_more_than_the_rate(rate, late):
    clock = LateClock(late)
    pacer = Pacer(rate, clock=clock.time, sleep=clock.sleep)
    times: list[float] = []

    each = int(rate) // 4  # three seconds and more of 16 senders

    async def sender() -> None:
        for _ in range(each):
            await pacer.wait()
            times.append(clock.now)

    await asyncio.gather(*(sender() for _ in range(16)))
    assert len(times) == 16 * each
    # Any second of the server's clock, shifted by jitter of up to what the margin leaves beside
    # SPREAD, holds no more than the rate...
    assert busiest(times, 1.0 + (PACING_MARGIN - SPREAD) * 0.99) <= rate
    # ...and the rate is kept when the loop is on time, with one wake-up a grant at most: two
    # waiters whose slots are close share one (at 200/s and above).
    if not late:
        assert busiest(times, 1.0) >= int(rate / (1 + PACING_MARGIN))
        assert len(clock.slept) <= len(times) / (2 if rate >= 200 else 1) + 1


async def test_a_cancelled_waiter_gives_its_slot_to_the_next():
    clock = YieldingClock()
    pacer = Pacer(10.0, clock=clock.time, sleep=clock.sleep)
    await pacer.wait()  # the first goes at once; the next ones queue
    first = asyncio.ensure_future(pacer.wait())
    second = asyncio.ensure_future(pacer.wait())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.wait_for(second, 5)  # a dispatcher that choked on it would leave it waiting
    assert clock.now - 1000.0 <= pacer.interval + TIMER_TICK  # one interval, not two


class SleepsUntilCancelled(FakeClock):
    """Sleeps that never end by themselves: what matters is how long each was asked for."""

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.Event().wait()


async def test_a_slot_moved_sooner_is_slept_for_not_the_one_the_dispatcher_saw():
    # A closed window's trickle books its try a second ahead; the window reopens, the pace
    # is set again: the waiter asleep for the try went a second later than the new pace said.
    clock = SleepsUntilCancelled()
    pacer = Pacer(1.0, clock=clock.time, sleep=clock.sleep)
    await pacer.wait()  # the first goes at once; the next one's slot is a second away
    waiter = asyncio.ensure_future(pacer.wait())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert len(clock.slept) == 1 and clock.slept[0] > 0.9
    clock.now += 0.1
    pacer.reschedule(100.0)
    await asyncio.sleep(0)
    assert clock.slept[-1] <= 0.02
    waiter.cancel()


# -- settings and flags ------------------------------------------------------------------------


def test_rate_and_concurrency_accept_auto_from_flags_env_and_file(tmp_path, monkeypatch):
    assert load_settings({}).concurrency == "auto"
    assert load_settings({"rate": "Auto", "concurrency": "auto"}).rate == "auto"
    monkeypatch.setenv("SNAPRELABEL_RATE", "auto")
    monkeypatch.setenv("SNAPRELABEL_CONCURRENCY", "24")
    settings = load_settings({})
    assert (settings.rate, settings.concurrency) == ("auto", 24)
    monkeypatch.delenv("SNAPRELABEL_RATE")
    monkeypatch.delenv("SNAPRELABEL_CONCURRENCY")
    config = tmp_path / "c.toml"
    config.write_text('rate = 12.5\nconcurrency = "auto"\n')
    settings = load_settings({}, str(config))
    assert (settings.rate, settings.concurrency) == (12.5, "auto")


@pytest.mark.parametrize("flags, message", [
    ({"rate": "fast"}, "setting rate: must be a number of requests per second"),
    ({"rate": -1}, "setting rate: must be"),
    ({"rate": "inf"}, "setting rate: must be"),
    ({"concurrency": 0}, "setting concurrency: must be a whole number from 1 to 1024, or auto"),
    ({"concurrency": 2.5}, "setting concurrency: must be"),
    ({"concurrency": 5000}, "setting concurrency: must be"),
])
def test_bad_rate_or_concurrency_is_one_clear_line(flags, message):
    with pytest.raises(ConfigError) as err:
        load_settings(flags)
    assert message in str(err.value)


def test_the_flags_take_auto_and_refuse_other_words(tmp_path):
    jobs = write_jobs(tmp_path / "jobs.csv", {})
    done = run_cli("run", str(jobs), "--concurrency", "many", "--dry-run")
    assert done.returncode == 2
    assert "argument --concurrency: 'many' is not an integer or auto" in done.stderr
    done = run_cli("run", str(jobs), "--rate", "auto", "--concurrency", "auto", "--dry-run",
                   "--project-id", PROJECT, "--report", str(tmp_path / "r.csv"))
    assert done.returncode == 0, done.stderr


# -- whole jobs against the simulator ----------------------------------------------------------


@pytest.mark.parametrize("sim", [{"rate_limit": 40, "snapshots": 240}], indirect=True)
async def test_rate_auto_finds_a_hidden_limit_and_every_row_is_applied(sim, tmp_path):
    targets = relabel_targets(sim.snapshots)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    settings = load_settings({"endpoint": sim.url, "project_id": PROJECT, "token": TOKEN,
                              "rate": "auto", **FAST})
    result = await run_job(settings, JobSpec(InputSpec(str(jobs)), str(tmp_path / "r.csv")))
    assert result.exit_code == 0
    assert {r["outcome"] for r in read_report(tmp_path / "r.csv")} == {"applied"}
    assert all(sim.snapshots[sid]["name"] == name for sid, name in targets.items())
    # Upper bounds only: the server refused few of the requests it saw.
    assert sim.status_counts[429] <= 0.1 * sum(sim.status_counts.values())
    assert result.summary.throttled == sim.status_counts[429]


@pytest.mark.parametrize("sim", [{"latency": 0.3, "snapshots": 120}], indirect=True)
async def test_concurrency_auto_keeps_enough_requests_in_flight_for_the_latency(sim, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.snapshots))
    settings = load_settings({"endpoint": sim.url, "project_id": PROJECT, "token": TOKEN,
                              "rate": 100, **FAST})
    result = await run_job(settings, JobSpec(InputSpec(str(jobs)), str(tmp_path / "r.csv")))
    assert result.exit_code == 0 and result.summary.counts["applied"] == 120
    # 100/s at 0.3 s or more each: Little's law wants 30 in flight; 16 would cap it at 53/s.
    assert result.summary.concurrency >= size_for(100, 0.3 * concurrency.HEADROOM)
    assert result.summary.concurrency <= concurrency.MAX


async def test_a_fixed_concurrency_is_kept(sim, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.snapshots, 50))
    settings = load_settings({"endpoint": sim.url, "project_id": PROJECT, "token": TOKEN,
                              "rate": 0, "concurrency": 3})
    result = await run_job(settings, JobSpec(InputSpec(str(jobs)), str(tmp_path / "r.csv")))
    assert result.exit_code == 0 and result.summary.concurrency == 3
