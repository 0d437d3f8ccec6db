"""`--rate auto` against the shapes quotas come in (per second, per window, a token bucket; with
or without Retry-After; with or without the limit stated in the 429), in simulated time: the
limiter takes a fake clock, and a small quota model (tests/quota_models.py) answers each request.
Simulated time is deterministic, so held and throttled shares are behaviour, not timings."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from quota_models import FixedWholeSecondRetryAfter, FixedWindow, PerSecond, TokenBucket

from worker.quota import Quota
from worker.rate import AdaptiveRateLimiter, RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Run:
    accepted: int
    refused: int
    lowest_rate: float  # the lowest rate the limiter set after its first 429
    per_second: dict[int, int]  # accepted in each second of the run
    refused_at: list[float]  # the fake clock's time of each 429

    @property
    def throttled(self) -> float:
        return self.refused / (self.accepted + self.refused)


async def run(lim: AdaptiveRateLimiter, clock: FakeClock, model, seconds: float, dated: bool = False) -> Run:
    """Send for `seconds` as fast as the limiter lets, each request answered at once (`dated`:
    with the server's second, its Date, whole seconds of its clock from the model's offset)."""
    end = clock.now + seconds
    start = clock.now
    accepted = refused = 0
    lowest = math.inf
    per_second: dict[int, int] = {}
    refused_at: list[float] = []
    while clock.now < end:
        await lim.acquire()
        status, retry_after, stated = model.answer(clock.now)
        if status == 200:
            accepted += 1
            second = int(clock.now - start)
            per_second[second] = per_second.get(second, 0) + 1
        else:
            refused += 1
            refused_at.append(clock.now)
        server_second = math.floor(clock.now - getattr(model, "offset", 0.0)) if dated else None
        lim.observe(status, retry_after, stated, server_second)
        if lim.ceiling is not None:
            lowest = min(lowest, lim.rate)
    return Run(accepted, refused, lowest, per_second, refused_at)


def auto(clock: FakeClock) -> AdaptiveRateLimiter:
    return AdaptiveRateLimiter(clock=clock.time, sleep=clock.sleep)


# -- per second ---------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [10, 100, 1000])
@pytest.mark.parametrize("retry_after", [None, 1.0])
async def test_a_per_second_quota_is_held_at_nine_tenths_or_more(limit, retry_after):
    clock = FakeClock()
    seconds = 120
    done = await run(auto(clock), clock, PerSecond(limit, retry_after), seconds)
    assert done.accepted >= 0.90 * limit * seconds  # the ramp included
    assert done.throttled <= 0.02


@pytest.mark.parametrize("retry_after", [None, 1.0])
async def test_probes_grow_rarer_while_the_ceiling_holds(retry_after):
    clock = FakeClock()
    lim = auto(clock)
    model = PerSecond(10, retry_after)  # (at 100/s a probe every 3 s is already rare enough)
    gaps = []
    for _ in range(120):
        await run(lim, clock, model, 1)
        if lim.confirmed:
            gaps.append(lim.probe_gap)
    assert gaps == sorted(gaps)  # never sooner while the ceiling holds
    first = AdaptiveRateLimiter.FIRST_PROBE_REQUESTS / 10
    assert gaps[-1] >= 2 * first * 0.95  # and at least twice as rare as the first probe


async def test_probes_that_cost_a_retry_after_pause_are_rarer_still():
    gaps = {}
    for retry_after in (None, 1.0):
        clock = FakeClock()
        lim = auto(clock)
        await run(lim, clock, PerSecond(100, retry_after), 60)
        gaps[retry_after] = lim.probe_gap
    # A pause of every sender for a second, once per gap: at most 3% of the time.
    assert gaps[1.0] >= 1.0 / AdaptiveRateLimiter.PAUSE_BUDGET > gaps[None]

@pytest.mark.parametrize("limit", [10, 100, 1000])
async def test_with_retry_after_the_ramps_first_429_counts_the_quota(limit):
    # Each 429 pauses every sender for a second. The ramp's first one says what the server's
    # second holds; a second pause to count it again costs a tenth of a ten-second job.
    clock = FakeClock()
    lim = auto(clock)
    done = await run(lim, clock, PerSecond(limit, 1.0), 10)
    assert done.refused == 1
    assert lim.ceiling == limit and lim.rate == pytest.approx(AdaptiveRateLimiter.HOLD_AT * limit)



async def test_without_retry_after_the_ramps_first_429_counts_the_quota_too():
    # The ramp's 10 accepted, as a rate over the half second it took, said 20/s: its second
    # was refused again until a count over a whole second said 10 (7 refused in 10 s, not 3).
    clock = FakeClock()
    lim = auto(clock)
    model = PerSecond(10)
    while lim.ceiling is None:
        await lim.acquire()
        status, _, _ = model.answer(clock.now)
        lim.observe(status, None)
    assert lim.ceiling == 10
    done = await run(lim, clock, model, 10)
    assert done.refused <= 2


async def test_a_full_second_is_tried_when_it_must_have_reopened_not_trickled_into():
    # A sliding second reopens a second after the first request it counted: one request then
    # finds it open. A trickle every quarter second cost a 429 more each closing (3 in a
    # ten-second job at 10/s, where the ramp's and a probe's are the least).
    clock = FakeClock()
    done = await run(auto(clock), clock, PerSecond(10), 10)
    assert done.refused <= 2


async def test_a_full_fixed_second_costs_few_429s_wherever_the_job_starts_in_it():
    # A fixed second, refused a second after the first request counted (the second before's),
    # is tried every few requests' time up to a second after its refusal. Ten starts in the
    # second: 5.5 429s a ten-second job at 10/s, when a trickle and the ramp's count (some of
    # the second before) found the quota 2% a second from 16 down.
    refused = []
    for start in range(10):
        clock = FakeClock()
        done = await run(auto(clock), clock, FixedWindow(10, 1.0, clock.now + start / 10), 10)
        refused.append(done.refused)
    assert sum(refused) / len(refused) <= 3


@pytest.mark.parametrize("offset", [2.0, 7.3, 13.1])
async def test_a_windows_ramp_closing_tries_a_second_sparingly(offset):
    # The ramp's first 429 could be a second's window: it is tried through the second after,
    # sqrt(rate / TRY_COST) times (the ramp's rate here, 225/s: 7). Every 4/rate apart (the
    # 50 ms floor) it was 13 tries before the window's trickle, on a 240/20 s quota.
    clock = FakeClock()
    refused = (await run(auto(clock), clock, FixedWindow(240, 20.0, clock.now + offset), 3)).refused_at
    assert refused and sum(1 for t in refused if t <= refused[0] + 1.2) <= 8


@dataclass
class StrayFirst(PerSecond):
    """One 429 to the job's second request (another client's burst), then a per-second quota."""

    _seen: int = 0

    def answer(self, now: float):
        self._seen += 1
        return (429, None, None) if self._seen == 2 else super().answer(now)


async def test_a_stray_429_at_the_start_is_no_quota():
    # Counted as the quota, it was one request a second, held for the probe gap (75 s); taken
    # as a rate (before), 9/s for the first 30 s: 54% of a minute's quota held.
    clock = FakeClock()
    done = await run(auto(clock), clock, StrayFirst(1000), 60)
    assert done.accepted >= 0.85 * 1000 * 60


@pytest.mark.parametrize("offset", [0.45, 0.5, 0.55, 0.6])
async def test_a_ceiling_refused_at_its_hold_is_backed_off_not_found_again_two_percent_lower(offset):
    # A fixed window's ramp count holds some of the second before (up to twice the quota): held
    # at 98% of it, refused. Cut 2% below the pace refused, each cut costs a pause (a tenth of
    # a ten-second job): 4 or 5 of them were, and 61-65% of the quota held. Backed off by a
    # tenth, a ramp count a fifth over costs two.
    clock = FakeClock()
    model = FixedWholeSecondRetryAfter(100, 1.0, clock.now + offset)
    done = await run(auto(clock), clock, model, 10)
    assert done.refused <= 3
    assert done.accepted >= 0.75 * 100 * 10


@pytest.mark.parametrize("limit", [10, 300])
async def test_a_ramp_count_over_a_fixed_second_costs_one_pause_more_at_most(limit):
    # The ramp's count over the last second straddles two of the server's fixed seconds (up to
    # half again the quota): held at it, the next second refuses. That second 429 and the
    # ramp's pin where the server's seconds start, and so the quota (worker/fixed_seconds.py):
    # backed off a tenth instead, a third pause came for one start in eight at 10/s.
    pauses = []
    for start in range(50):
        clock = FakeClock()
        model = FixedWholeSecondRetryAfter(limit, 1.0, clock.now + start / 50)
        pauses.append((await run(auto(clock), clock, model, 12)).refused)
    assert max(pauses) <= 2
    assert 2 in pauses  # some ramps did count over the quota


@pytest.mark.parametrize("limit", [10, 100, 300])
async def test_with_the_servers_date_a_ramp_over_two_of_its_seconds_costs_a_pause_more_less_often(limit):
    # The answers' Date says which of the server's seconds each came in: the ramp's count is the
    # refused second's alone (when at least 0.8 of the last second's), where over the last
    # second it held some of the second before: a second pause (110-118 counted for 100 in
    # queue runs).
    pauses: dict[bool, list[int]] = {}
    for dated in (False, True):
        pauses[dated] = []
        for start in range(50):
            clock = FakeClock()
            model = FixedWholeSecondRetryAfter(limit, 1.0, clock.now + start / 50)
            pauses[dated].append((await run(auto(clock), clock, model, 12, dated=dated)).refused)
    assert max(pauses[True]) <= 2
    assert pauses[True].count(2) <= pauses[False].count(2) / 2, pauses


@pytest.mark.parametrize("retry_after", [None, 1.0])
async def test_with_the_servers_date_a_sliding_second_is_still_held_at_nine_tenths(retry_after):
    # A sliding window's count over the last second is its quota; the refused second's alone is
    # under it when the ramp began in the second before: taken if at least 0.8 of it, and held
    # under the quota until a probe (at worst 91.8% held in 120 s, 94.7% without the Date).
    for start in range(10):
        clock = FakeClock()
        clock.now += start / 10
        done = await run(auto(clock), clock, PerSecond(100, retry_after), 120, dated=True)
        assert done.accepted >= 0.90 * 100 * 120, start
        assert done.throttled <= 0.02


async def test_the_ramps_requests_taken_before_its_429_and_answered_after_add_to_its_count():
    # Two or three of the ramp's last requests in flight, taken by the server before the refused
    # one but answered after it, were left out: 97-98 counted for 100 in a fifth of queue runs.
    clock = FakeClock()
    lim = auto(clock)
    second = 1796400000  # of the server's clock, as its Date says
    for _ in range(101):
        lim.granted()
    for _ in range(97):
        clock.now += 0.004
        lim.observe(200, None, None, second)
    lim.observe(429, 1.0, None, second)
    assert lim.ceiling == 97
    for _ in range(2):
        clock.now += 0.002
        lim.observe(200, None, None, second)
    lim.observe(200, None, None, second + 1)  # taken in the next second: not the refused one's
    assert lim.ceiling == 99 and lim.rate == pytest.approx(AdaptiveRateLimiter.HOLD_AT * 99)
    lim.observe(200, None, None, second)  # no request of the ramp's left in flight: not counted
    assert lim.ceiling == 99


async def test_a_429_just_after_a_pause_far_under_the_ceiling_is_not_taken_for_the_quota():
    # A 429 that is not the quota's (another client's burst on a shared quota, a gateway's stray)
    # a fifth of a second after the ramp's pause: what that fraction of a second took, 20 of a
    # quota of 100, was taken as the quota's count and held for a probe gap (19.6/s).
    clock = FakeClock()
    lim = auto(clock)
    model = PerSecond(100, 1.0)
    await run(lim, clock, model, 1.5)  # the ramp, its 429 at 0.49 s and its pause of a second
    await run(lim, clock, model, 0.2)
    await lim.acquire()
    lim.observe(429, 1.0)  # the stray
    done = await run(lim, clock, model, 10)
    assert done.lowest_rate >= 0.85 * 100
    # A quota that does fall so far says so again after the pause, and is followed.
    fallen = await run(lim, clock, PerSecond(20, 1.0), 10)
    assert all(abs(fallen.per_second[s] - 20) <= 2 for s in range(5, 10)), fallen.per_second


async def test_a_probe_past_a_fixed_window_does_not_run_away_before_a_window_refuses_it():
    # A probe round straddling two fixed windows may pass at 2% over; growing fourfold each
    # quarter second from there (and from one round), the pace ran to 2.7 times the quota before
    # a window's end refused it, and a ceiling counted there (116-119) was held over the quota.
    clock = FakeClock()
    lim = auto(clock)
    model = FixedWholeSecondRetryAfter(100, 1.0, clock.now + 0.37)
    end, fastest = clock.now + 120, 0.0
    while clock.now < end:
        await lim.acquire()
        lim.observe(*model.answer(clock.now))
        if lim.ceiling is not None and lim.closed_since is None:
            fastest = max(fastest, lim.rate)
    assert fastest <= 1.3 * 100
    assert lim.ceiling is not None and lim.ceiling <= 106


@pytest.mark.parametrize("offset", [0.1, 0.37, 0.7])
@pytest.mark.parametrize("raised", [110, 150])
async def test_a_probe_that_costs_a_pause_climbs_a_round_at_a_time(offset, raised):
    # Past a raised quota, quick rounds (a quarter second, the step doubling) find it within
    # seconds where a 429 costs nothing more. With Retry-After each costs a pause of every
    # sender, and a fixed window refuses only once its count is used: the pace ran to 2.3-4
    # times the new quota before one did (a ceiling counted there off by up to 7%, held over).
    clock = FakeClock()
    lim = auto(clock)
    model = FixedWholeSecondRetryAfter(100, 1.0, clock.now + offset)
    raised_at, end, fastest = clock.now + 30, clock.now + 120, 0.0
    while clock.now < end:
        if clock.now >= raised_at:
            model.limit = raised
        await lim.acquire()
        lim.observe(*model.answer(clock.now))
        if clock.now >= raised_at and lim.closed_since is None:
            fastest = max(fastest, lim.rate)
    assert fastest <= 1.6 * raised
    assert lim.ceiling is not None and lim.ceiling >= 0.9 * raised


async def test_a_stated_per_second_limit_is_the_ceiling_at_once():
    clock = FakeClock()
    lim = AdaptiveRateLimiter(start=400.0, clock=clock.time, sleep=clock.sleep)
    await lim.acquire()
    lim.observe(200, None)
    lim.observe(429, None, Quota(100, 1.0))
    assert lim.ceiling == 100 and lim.rate <= 100 and lim.confirmed


async def test_a_stated_second_is_closed_at_its_first_429_not_sent_into_at_the_pace_it_sets():
    # The 429 says the second's quota is used up: the next request at the stated pace, before
    # the second turns, was refused as well (2.2 429s a ten-second 10/s job over ten starts; 1.3).
    refused = []
    for start in range(10):
        clock = FakeClock()
        done = await run(auto(clock), clock, FixedWindow(10, 1.0, clock.now + start / 10, state=True), 10)
        refused.append(done.refused)
    assert sum(refused) / len(refused) <= 1.6, refused


@pytest.mark.parametrize("limit", [100, 1000])
async def test_a_stated_second_is_tried_when_its_last_limit_taken_leave_it(limit):
    # The second holds the last `limit` requests taken; the ramp's or a probe's before them were
    # the second before's. Tried a second after the oldest taken in the last second, it was
    # tried before the turn: up to 5 (100/s) and 13 (1,000/s) 429s a ten-second job.
    refused = []
    for start in range(20):
        clock = FakeClock()
        done = await run(auto(clock), clock, FixedWindow(limit, 1.0, clock.now + start / 20, state=True), 10)
        refused.append(done.refused)
    assert max(refused) <= 3, refused


async def test_a_stated_limit_with_retry_after_is_probed_as_rarely_as_its_pause_allows():
    # The gap before the next probe is set from what a probe costs: here a second's pause of
    # every sender. Taken before its Retry-After, the first stated 429 set a gap of 1 s, and the
    # probe paused the job again within seconds (84% of a ten-second 100/s job held, 93% now).
    held = []
    for start in range(10):
        clock = FakeClock()
        model = FixedWholeSecondRetryAfter(100, 1.0, clock.now + start / 10, state=True)
        done = await run(auto(clock), clock, model, 10)
        held.append(done.accepted / 1000)
        assert done.refused == 1
    assert min(held) >= 0.9


async def test_the_requests_in_flight_when_a_limit_is_stated_do_not_stretch_the_probe_gap():
    # One probe refused is one confirmation: the 429s of the requests sent with it say nothing new.
    clock = FakeClock()
    lim = AdaptiveRateLimiter(start=400.0, clock=clock.time, sleep=clock.sleep)
    await lim.acquire()
    lim.observe(200, None)
    lim.observe(429, None, Quota(100, 1.0))  # the second is full
    clock.now += 0.5
    lim.observe(200, None)  # it turned
    clock.now += 4.5
    lim.observe(200, None)
    lim.observe(429, None, Quota(100, 1.0))  # a probe, refused: the gap doubles
    gap = lim.probe_gap
    for _ in range(3):
        clock.now += 0.01
        lim.observe(429, None, Quota(100, 1.0))
    assert gap > 1.0 and lim.probe_gap == gap


@pytest.mark.parametrize("before, after", [(100, 50), (100, 200)])
async def test_a_per_second_quota_that_changes_is_followed_within_seconds(before, after):
    clock = FakeClock()
    lim = auto(clock)
    await run(lim, clock, PerSecond(before), 30)
    done = await run(lim, clock, PerSecond(after), 15)
    # Within 10% of the new quota from the fifth second on.
    assert all(abs(done.per_second[s] - after) <= 0.1 * after for s in range(5, 15))


async def test_a_stated_per_second_quota_that_doubles_is_followed_after_one_probe_round():
    # Fixed windows, as the simulator's (and a gateway's) per-second quotas: a probe held two
    # rounds (for a count to trust) took 4.5 s on average to follow, up to 7; a stated limit
    # needs no count. The change lands at 40 points of ten seconds, two whole probe cycles of
    # five (the mean over part of one says where the cycle began: 28 points over seven seconds
    # gave 2.3 or 3.2 as the hold moved the cycle by a second); ten points over three seconds
    # missed a worst case of 8 s (a probe a round at 2% over before its quick rounds, where the
    # next 429 states the limit anyway).
    followed = []
    for change_at in (20 + 0.25 * i for i in range(40)):
        clock = FakeClock()
        lim = auto(clock)
        await run(lim, clock, FixedWindow(50, 1.0, state=True), change_at)
        done = await run(lim, clock, FixedWindow(100, 1.0, state=True), 10)
        followed.append(min((s for s, n in done.per_second.items() if n >= 90), default=math.inf))
    assert max(followed) <= 5 and sum(followed) / len(followed) <= 3, followed


async def test_a_token_bucket_is_held_like_a_per_second_quota():
    clock = FakeClock()
    done = await run(auto(clock), clock, TokenBucket(100, 200), 60)
    assert done.accepted >= 0.90 * 100 * 60
    assert done.throttled <= 0.05


# -- per window -------------------------------------------------------------------------------


@pytest.mark.parametrize("limit, window, offset", [(240, 20.0, 7.3), (600, 60.0, 13.1), (3000, 60.0, 41.0)])
@pytest.mark.parametrize("state", [False, True])
async def test_a_per_window_quota_is_held_without_retry_after(limit, window, offset, state):
    clock = FakeClock()
    seconds = 4 * window
    model = FixedWindow(limit, window, offset + clock.now, state=state)
    done = await run(auto(clock), clock, model, seconds)
    # N per window held: the job's rate against N/W over its whole length.
    assert done.accepted >= (0.95 if state else 0.85) * limit / window * seconds
    assert done.throttled <= 0.05


async def test_a_closed_window_is_never_taken_for_a_fallen_quota():
    clock = FakeClock()
    lim = auto(clock)
    done = await run(lim, clock, FixedWindow(240, 20.0, 1007.3), 60)
    # The first window was used up within seconds at slow start; its 429s then ran for most of
    # it. A per-second reading would cut to what was accepted meanwhile: nothing, the floor.
    assert done.lowest_rate > 5 * AdaptiveRateLimiter.FLOOR
    assert lim.window is not None and abs(lim.window - 20.0) <= 2.0
    assert abs(lim.rate - 12.0) <= 0.15 * 12.0


@pytest.mark.parametrize("offset", [7.3, 13.1])
async def test_a_window_that_closes_before_its_length_is_known_is_tried_sparsely(offset):
    # The first reopening's pace, counted from the job's start, is too fast: the next window
    # closes early, and stays closed for most of its length, still unknown. It has lasted at
    # least since its opening: a try every tenth of that, not every quarter second growing by a
    # fifth of the time closed (18 429s in that closing at 240/20 s; 10 now).
    clock = FakeClock()
    start = clock.now
    done = await run(auto(clock), clock, FixedWindow(240, 20.0, start + offset), offset + 20)
    second = [t for t in done.refused_at if t > start + offset]  # to the second window's end
    assert 0 < len(second) <= 12


async def test_an_hours_window_is_tried_sparser_the_longer_it_stays_closed():
    # 3,600 an hour, the job begun 1,476 s before the window ends: slow start takes the 3,600
    # in seconds. A try every 2 s until the reopening was 748 429s; past a minute or so, a try
    # every few hundredths of the time the window has lasted.
    clock = FakeClock()
    start = clock.now
    ends = start + 1476.0
    done = await run(auto(clock), clock, FixedWindow(3600, 3600.0, ends), 1476.0 + 2 * 3600)
    closing = [t for t in done.refused_at if t < ends]
    assert 0 < len(closing) <= (ends - start) / 8
    # ... and the reopening is still found soon enough: the next two windows are used.
    took = sum(n for second, n in done.per_second.items() if 1476 <= second < 1476 + 2 * 3600)
    assert took >= 0.95 * 2 * 3600


async def test_a_window_of_ten_a_minute_is_not_tried_every_two_seconds():
    # Each 429 costs a tenth of such a window's requests: a try every 2 s was 48% of the job's
    # requests refused, and a try further apart the longer the window has lasted costs a little
    # of the window's time instead.
    clock = FakeClock()
    start = clock.now
    done = await run(auto(clock), clock, FixedWindow(10, 60.0, start + 24.6), 240.0)
    assert done.throttled <= 0.3
    assert done.accepted >= 0.85 * 10 / 60 * 240


async def test_a_stated_window_is_paced_evenly_from_the_reopening():
    clock = FakeClock()
    lim = auto(clock)
    await run(lim, clock, FixedWindow(600, 60.0, 1030.0, state=True), 120)
    assert lim.window == 60.0 and lim.pace == 10.0


async def test_a_stated_window_is_not_trickled_into_before_its_next_boundary():
    # Every other window is a probe, sent faster: it closes seconds early. The stated length is
    # exact, so the next boundary is known from the last opening seen, however many windows back:
    # the trickle waits for it rather than asking four times a second until it comes.
    clock = FakeClock()
    lim = auto(clock)
    model = FixedWindow(600, 60.0, 1030.0, state=True)
    await run(lim, clock, model, 240)  # found the boundary
    done = await run(lim, clock, model, 240)
    # A 429 a probe window, the one that closes it: tried at the latest the boundary can be, the
    # window is open (a trickle from before it cost six in these four windows; twelve before that).
    assert done.refused <= 4
    assert done.accepted >= 0.95 * 600 * 4


@pytest.mark.parametrize("offset", [0.0, 5.0, 13.1, 19.9])
async def test_a_stated_windows_first_closing_is_tried_evenly(offset):
    # No boundary seen yet: a try every W/20 until one is taken, and the ramp's few 429s. A trickle
    # dense at first, for a boundary soon after the closing, cost up to 27 in a 20 s window.
    clock = FakeClock()
    done = await run(auto(clock), clock, FixedWindow(240, 20.0, clock.now + offset, state=True), 20)
    assert done.refused <= 20 + 2
    assert done.accepted >= 240


async def test_an_opening_read_late_foretells_no_boundary():
    # Queue mode reads every replica's answers in batches: an answer to a request sent before a
    # closing can come after it and look like the window reopening. Closed again at once, the
    # limiter must not wait a window from that "opening": the trickle goes on.
    clock = FakeClock()
    lim = auto(clock)
    stated = Quota(240, 20.0)
    await run(lim, clock, FixedWindow(240, 20.0, 1007.3, state=True), 60)  # boundaries known
    lim.observe(429, None, stated)  # closed
    lim.observe(200, None)  # a late answer to a request sent before
    lim.observe(429, None, stated)  # closed still
    before = clock.now
    await lim.acquire()
    assert clock.now - before <= 20.0 / 20 + 0.05  # the trickle's spacing (W/20), not a window


@pytest.mark.parametrize("before, after", [(240, 120), (240, 480)])
async def test_a_per_window_quota_that_changes_is_followed_within_a_few_windows(before, after):
    clock = FakeClock()
    lim = auto(clock)
    window = 20.0
    await run(lim, clock, FixedWindow(before, window, 1000.0), 100)
    offset = clock.now  # the new quota's windows start now
    model = FixedWindow(after, window, offset)
    # A lowered quota closes the next window early; a raised one is found by the next probe (a
    # window sent 10% faster, every window), and the window after it, sent at twice, sizes it.
    await run(lim, clock, model, 2 * window)
    done = await run(lim, clock, model, 2 * window)
    assert done.accepted >= 0.85 * 2 * after
    assert done.throttled <= 0.05


async def test_with_retry_after_a_closed_window_costs_one_429():
    clock = FakeClock()
    done = await run(auto(clock), clock, FixedWindow(240, 20.0, 1007.3, retry_after=True), 80)
    assert done.refused <= 10


# -- a fixed rate -------------------------------------------------------------------------------


async def test_a_fixed_rate_above_the_stated_limit_slows_to_it_once(caplog):
    lim = RateLimiter(50.0)
    lim.observe(429, None, Quota(600, 60.0))
    lim.observe(429, None, Quota(600, 60.0))
    assert lim.rate == 10.0 and lim.slowed_to == Quota(600, 60.0)
    lim.observe(429, None, Quota(1200, 60.0))  # a ceiling, not a demand: never faster
    assert lim.rate == 10.0


async def test_a_fixed_rate_under_the_stated_limit_is_kept():
    lim = RateLimiter(5.0)
    lim.observe(429, None, Quota(600, 60.0))
    assert lim.rate == 5.0 and lim.slowed_to is None


async def test_a_429_long_after_the_cut_with_nothing_accepted_meanwhile_is_a_closed_window():
    clock = FakeClock()
    lim = auto(clock)
    await run(lim, clock, PerSecond(10**6), 0.9)  # slow start, everything accepted
    lim.observe(429, None)
    cut = lim.rate
    clock.now += 3.0  # every sender was backing off from its 429
    lim.observe(429, None)
    assert lim.closed_since is not None and lim.rate == cut
