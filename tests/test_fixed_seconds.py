"""Fixed seconds' phase and count from the times of our answers (worker/fixed_seconds.py), driven
by the quota models of tests/quota_models.py in simulated time."""

from __future__ import annotations

import pytest
from quota_models import FixedWholeSecondRetryAfter, PerSecond, TokenBucket

from worker.fixed_seconds import FixedSeconds


def _ramp_then_pace(model, pace: float, seen: FixedSeconds) -> tuple[float, int]:
    """As `--rate auto` meets a quota with Retry-After: a slow start doubling every 50 ms from
    10/s until the first 429, its pause of a second, then `pace` until the next 429. Returns
    the time of that second 429 and what the server took in the second before the first (the
    count on our own clock, which a fixed second's start may split)."""
    t, rate, doubling_at, accepted, refused = 0.0, 10.0, 0.05, [], []
    while len(refused) < 2:
        status, _, _ = model.answer(t)
        if status == 200:
            seen.accepted(t)
            accepted.append(t)
        else:
            seen.refused(t)
            refused.append(t)
            t, rate = t + 1.0, pace
            continue
        if not refused and t >= doubling_at:
            rate, doubling_at = 2 * rate, doubling_at + 0.05
        t += 1 / rate
    return refused[1], sum(1 for a in accepted if refused[0] - 1.0 < a <= refused[0])


@pytest.mark.parametrize("quota", [10, 100, 1000])
def test_two_refused_seconds_give_the_quota_a_count_over_the_last_second_misses(quota):
    counts_over_the_last_second = []
    for start in [i / 10 for i in range(10)]:  # where the job starts in the server's second
        seen = FixedSeconds()
        now, counted = _ramp_then_pace(FixedWholeSecondRetryAfter(quota, 1.0, start), 1.3 * quota, seen)
        counts_over_the_last_second.append(counted)
        fit = seen.quota(now)
        assert fit is not None and fit.exact and fit.low <= quota <= fit.high, (start, fit)
    assert max(counts_over_the_last_second) > 1.1 * quota  # some ramps did straddle two seconds


def test_a_sliding_window_is_never_counted_over_its_quota():
    seen = FixedSeconds()
    now, _ = _ramp_then_pace(PerSecond(100, 1.0), 130, seen)
    fit = seen.quota(now)
    assert fit is None or fit.high <= 100


def test_a_token_bucket_is_no_fixed_second():
    seen = FixedSeconds()
    now, _ = _ramp_then_pace(TokenBucket(100, 100), 130, seen)
    assert seen.quota(now) is None


def test_a_learning_taken_over_mid_job_does_not_count_a_second_it_saw_only_the_end_of():
    # Another replica sent at 150/s until 0.83 s; this learning sees the answers from then on,
    # at 160/s, then at 110/s after its second pause. The server's second around 0.83 s took
    # most of its count before: counted from the first answer seen, it explains the answers with
    # a quota of 81.
    def fit(from_start: bool):  # (from_start=True: Fit(81, 81))
        model = FixedWholeSecondRetryAfter(100, 1.0, 0.7039)
        seen, joined, paces = FixedSeconds(from_start=from_start), 0.8297, [150, 160, 160, 110]
        t, refusals, last = 0.0, 0, 0.0
        while refusals < 3:
            status, _, _ = model.answer(t)
            if t >= joined:
                (seen.accepted if status == 200 else seen.refused)(t)
                if status == 429:
                    refusals, last, t = refusals + 1, t, t + 1.0
            t += 1 / paces[refusals if t >= joined else 0]
        return seen.quota(last)

    taken_over = fit(from_start=False)
    assert taken_over is None or taken_over.low <= 100 <= taken_over.high
