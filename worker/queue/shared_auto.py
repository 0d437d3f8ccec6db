"""`--rate auto` in queue mode: replicas that share a quota share what is learnt of it.

Every replica sends on the shared schedule (shared_limit.py, GCRA on the Redis clock) and tells a
Redis stream of each request let through and each answer, in batches of FLUSH_EVERY. One replica
at a time, the one holding a lease in Redis, reads that stream and feeds it, in the order of the
Redis clock, to one `AdaptiveRateLimiter`: the learning of a single process, over every replica's
requests. What it decides (the pace, a pause, a closed window's trickle) it writes back as the
schedule's interval and not-before, which every replica's next reservation follows. So three
replicas find the quota as one job would, probe past it once and not three times, and a quota
the API states in a 429 is taken once for all of them.

The lease is renewed every RENEW_EVERY and lapses after LEASE: a replica that dies or finishes
hands the learning over within that, and its successor goes on from what was learnt (saved in
Redis each renewal) rather than starting again from slow start.
"""

from __future__ import annotations

import asyncio
import json
import math
from contextlib import suppress

from redis.asyncio import Redis

from ..logs import log
from ..quota import Quota
from ..rate import PACING_MARGIN, AdaptiveRateLimiter
from ..waits import honour_lost_cancellation, set_within
from .shared_limit import REDIS_FAILURES

FLUSH_EVERY = 0.01  # seconds: a replica's grants and answers reach the learning this late at most
LEARN_WAIT = 0.003  # the learner's wait between reads while outcomes come in ...
IDLE_WAIT = 0.25  # ... growing up to this while none do: an idle queue costs few round trips
RENEW_EVERY = 1.0
LEASE_MS = 3_000
KEY_TTL_MS = 3_600_000  # the stream, what was learnt, the pace: outlive a pause of the queue, not a day
STREAM_MAXLEN = 1_000  # batches kept: the learning reads within milliseconds
READ_COUNT = 500
LATE_BATCH = FLUSH_EVERY + 0.005  # a replica's batch reaches Redis this long after its first event at most
# ... and no slot is given while the learning waits for them, until its decision replaces the hold
# (held only as long as the wait, the ramp's pace resumed before the decision: 18 ms in a trace)
HOLD_FOR_LATE = 0.1
MAX_BATCH = 1 << 20  # characters of a batch read
MAX_BUFFERED = 20_000  # events held while Redis is away (then the oldest are dropped)

# KEYS: lease. ARGV: replica, lease ms. 2: taken now, 1: renewed, 0: another replica holds it.
LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: interval, not-before, tat. ARGV: interval µs, not-before µs ('' for none), ttl ms.
# As Pacer.reschedule, no slot before not-before; but a replica's slot, once booked, stands: a
# faster pace moves the next free slot up to not-before, a slower one never moves it back (each
# refused request of a trickle would otherwise let every replica's booking through beside it).
APPLY = """
local faster = tonumber(ARGV[1]) < (tonumber(redis.call('GET', KEYS[1])) or math.huge)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
if ARGV[2] ~= '' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local not_before = tonumber(ARGV[2])
  if not_before > now then
    redis.call('SET', KEYS[2], ARGV[2], 'PX', math.floor((not_before - now) / 1000) + 1)
  else
    redis.call('DEL', KEYS[2])
  end
  local tat = tonumber(redis.call('GET', KEYS[3])) or 0
  if (faster and tat > not_before) or (not faster and tat < not_before) then
    redis.call('SET', KEYS[3], ARGV[2], 'PX', math.floor(math.max(not_before - now, 0) / 1000) + 1000)
  end
end
return 0
"""


class Outcomes:
    """A replica's grants and answers, on the Redis clock, until the next flush. The server's
    second of the answers after it (their Date; none: `s`) is written when it changes: a few
    bytes a second, and a learner of an older version skips it."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.pending = asyncio.Event()  # something to flush
        self.throttled = asyncio.Event()  # a 429 is flushed at once: the learning acts on it
        self._second: int | None = None  # the server's second last written in this batch

    def granted(self, at: float) -> None:
        self._add(f"g{at:.4f}")

    def answered(self, at: float, status: int | None, retry_after: float | None,
                 quota: Quota | None, server_second: int | None = None) -> None:
        if server_second != self._second:
            self._add("s" if server_second is None else f"s{server_second}")
            self._second = server_second
        fields = (status, retry_after, quota.limit if quota else None, quota.window if quota else None)
        self._add(f"a{at:.4f}," + ",".join("" if f is None else f"{f:g}" for f in fields))
        if status == 429:
            self.throttled.set()

    def _add(self, event: str) -> None:
        if len(self.events) >= MAX_BUFFERED:
            del self.events[: MAX_BUFFERED // 10]
        self.events.append(event)
        self.pending.set()

    def take(self) -> list[str]:
        events, self.events = self.events, []
        self._second = None
        self.pending.clear()
        self.throttled.clear()
        return events


# An answer (time, status, Retry-After, quota stated, server's second), or a grant's time.
Event = tuple[float, int | None, float | None, Quota | None, int | None] | float


def parse_events(text: str) -> list[Event]:
    """A batch, as `Outcomes` wrote it. The stream is shared: what is not ours is skipped."""
    events: list[Event] = []
    second = None
    for item in text.split(";"):
        try:
            if item.startswith("s"):
                second = None  # junk (`sabc`) names no second either
                second = int(item[1:]) if len(item) > 1 else None
            elif item.startswith("g"):
                at = float(item[1:])
                if math.isfinite(at):
                    events.append(at)
            elif item.startswith("a"):
                at_s, status_s, retry_s, limit_s, window_s = item[1:].split(",")
                at = float(at_s)
                quota = None
                if limit_s and window_s:
                    limit, window = float(limit_s), float(window_s)
                    if limit > 0 and window > 0 and math.isfinite(limit * window):
                        quota = Quota(limit, window)
                if math.isfinite(at):
                    events.append((at, int(status_s) if status_s else None,
                                   float(retry_s) if retry_s else None, quota, second))
        except ValueError:
            continue
    return events


def _learned(saved: bytes | str | None) -> dict[str, float | None]:
    """What a predecessor saved; the key is shared, so what is not a finite number is left out
    (and the limiter bounds what is)."""
    try:
        values = json.loads(saved or "{}")
    except ValueError:
        return {}
    if not isinstance(values, dict):
        return {}
    return {k: float(v) for k, v in values.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def _time(event: Event) -> float:
    return event if isinstance(event, float) else event[0]


class SharedSchedule:
    """The learning's view of the shared schedule: its clock is the time of the event being
    fed (the Redis clock), and what it decides waits to be written to Redis."""

    def __init__(self) -> None:
        self.time = 0.0
        self.interval: float | None = None
        self.not_before: float | None = None
        self.changed = False
        self._taken = math.inf  # the interval last taken to be written

    def now(self) -> float:
        return self.time

    async def wait(self) -> None:
        raise RuntimeError("the replicas wait on Redis, not on the learning")

    def speed_up(self, rate: float) -> None:
        self.interval = (1.0 + PACING_MARGIN) / rate
        self.changed = True

    def reschedule(self, rate: float, not_before: float = -math.inf) -> None:
        self.speed_up(rate)
        assert self.interval is not None
        self.not_before = max(self.time + self.interval, not_before)

    def take(self, ramping: bool = False) -> tuple[float, float | None] | None:
        """The change to write, if any. `ramping` (slow start): a faster pace from now, not after
        the slots booked at the old one: each replica holds one, up to three old intervals ahead,
        and the ramp's rounds went unused (10/s for half a second of a 100/s quota's ramp, which
        then lasted a second and its count often straddled two of the server's)."""
        if not self.changed or self.interval is None:
            return None
        not_before = self.not_before
        if ramping and not_before is None and self.interval < self._taken:
            not_before = self.time + self.interval
        change = (self.interval, not_before)
        self.changed, self.not_before, self._taken = False, None, self.interval
        return change


class SharedLearning:
    """Each replica runs one: it flushes the replica's outcomes and, while it holds the lease,
    learns from everyone's."""

    def __init__(self, client: Redis, key: str, replica: str, outcomes: Outcomes) -> None:
        self.replica = replica
        self.outcomes = outcomes
        self.learning: AdaptiveRateLimiter | None = None  # while this replica holds the lease
        self._client = client
        self._stream = f"{key}:outcomes"
        self._lease_key = f"{key}:learner"
        self._learned_key = f"{key}:learned"
        self._schedule_keys = [f"{key}:interval", f"{key}:not-before", f"{key}:tat"]
        self._lease = client.register_script(LEASE)
        self._release = client.register_script(RELEASE)
        self._apply = client.register_script(APPLY)
        self._schedule = SharedSchedule()
        self._cursor = "0-0"  # set on taking over
        self._renew_at = 0.0
        self._wait = LEARN_WAIT  # the learner's next wait when there is nothing to read

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                honour_lost_cancellation()
                try:
                    await self._flush()
                    if loop.time() >= self._renew_at:
                        self._renew_at = loop.time() + RENEW_EVERY
                        await self._hold_lease()
                    if self.learning is not None:
                        await self._learn()  # its wait: _quiet
                        continue
                except REDIS_FAILURES:
                    pass  # the limiter falls back to a local share meanwhile; try again
                await self._next_batch(max(0.0, self._renew_at - loop.time()))
        finally:
            with suppress(*REDIS_FAILURES):
                await self._flush()
                if self.learning is not None:  # the next replica goes on from here, at once
                    await self._save()
                    await self._release(keys=[self._lease_key], args=[self.replica])

    async def _flush(self) -> None:
        events = self.outcomes.take()
        if events:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.xadd(self._stream, {"e": ";".join(events)}, maxlen=STREAM_MAXLEN, approximate=True)
                pipe.pexpire(self._stream, KEY_TTL_MS)  # gone an hour after the last replica
                await pipe.execute()

    async def _hold_lease(self) -> None:
        held = int(await self._lease(keys=[self._lease_key], args=[self.replica, LEASE_MS]))
        if held == 0:
            self.learning = None
        elif held == 2 or self.learning is None:
            await self._take_over()
        else:
            await self._save()

    async def _take_over(self) -> None:
        learned = _learned(await self._client.get(self._learned_key))
        self._schedule = SharedSchedule()
        self.learning = AdaptiveRateLimiter.going_on(learned, self._schedule)
        if learned:  # what came before was learnt from
            last = await self._client.xrevrange(self._stream, count=1)
            self._cursor = last[0][0] if last else "0-0"
        else:
            # The job is starting: the replicas' first requests count (their credential checks
            # take the quota's first slots), flushed before this replica took the lease or after.
            seconds, micros = await self._client.time()
            self._cursor = f"{max(0, seconds * 1000 + micros // 1000 - LEASE_MS)}-0"
        log.info("shared rate learning: taken over", consumer=self.replica,
                 rate=round(self.learning.rate, 3), ceiling=learned.get("ceiling"))

    async def _next_batch(self, most: float) -> None:
        """Until this replica has outcomes to flush (at most `most`), then FLUSH_EVERY to gather
        a batch, unless one is a 429."""
        outcomes = self.outcomes
        if await set_within(outcomes.pending, most) and not outcomes.throttled.is_set():
            await set_within(outcomes.throttled, FLUSH_EVERY)

    async def _quiet(self) -> None:
        """Nothing to read: the learner waits a little, longer and longer while nothing comes
        (at once when this replica has outcomes of its own)."""
        await set_within(self.outcomes.pending, self._wait)
        self._wait = min(IDLE_WAIT, 2 * self._wait)

    async def _save(self) -> None:
        assert self.learning is not None
        await self._client.set(self._learned_key, json.dumps(self.learning.learned()),
                               px=KEY_TTL_MS)

    async def _learn(self) -> None:
        assert self.learning is not None
        events = await self._read()
        if events is None:
            await self._quiet()
            return
        self._wait = LEARN_WAIT
        if any(not isinstance(e, float) and e[1] == 429 and self.learning.counting(e[3]) for e in events):
            # A 429 is flushed at once, the other replicas' answers before it up to FLUSH_EVERY
            # later. The learning counts what the server took from this one (the ramp's, or
            # any once 429s pause every sender): without them it counted 91 and 92 of a quota
            # of 100 and held 89/s. Nothing is sent meanwhile, or the ramp's last pace would be.
            await self._hold(HOLD_FOR_LATE)
            await asyncio.sleep(LATE_BATCH)
            await self._flush()
            events += await self._read() or []
        events.sort(key=_time)
        schedule, learning = self._schedule, self.learning
        for event in events:
            # Batches from several replicas interleave: the learning's clock never goes back.
            schedule.time = max(schedule.time, _time(event))
            if isinstance(event, float):
                learning.granted()
            else:
                learning.observe(*event[1:])
        change = schedule.take(ramping=learning.ceiling is None)
        if change is not None:
            interval, not_before = change
            await self._apply(keys=self._schedule_keys,
                              args=[round(interval * 1e6),
                                    "" if not_before is None else f"{not_before * 1e6:.0f}",
                                    KEY_TTL_MS])

    async def _read(self) -> list[Event] | None:
        """The replicas' events flushed since the last read (None: nothing was)."""
        # Not a blocking XREAD: a task cancelled while redis-py waited on one (the consumer
        # stopping) was seen to hang in it for good, and the consumer with it.
        read = await self._client.xread({self._stream: self._cursor}, count=READ_COUNT)
        if not read:
            return None
        events: list[Event] = []
        for _stream, entries in read:
            for entry_id, fields in entries:
                self._cursor = entry_id
                text = fields.get(b"e", fields.get("e", b""))
                if len(text) <= MAX_BATCH:  # ours are a few kB; a foreign one may be anything
                    events.extend(parse_events(text.decode(errors="replace") if isinstance(text, bytes)
                                               else text))
        return events

    async def _hold(self, seconds: float) -> None:
        """No slot for `seconds` from now (on the Redis clock), at the pace last set."""
        interval = self._schedule.interval
        if interval is None:
            return  # nothing set yet: the replicas go at the starting pace
        seconds_now, micros = await self._client.time()
        await self._apply(keys=self._schedule_keys,
                          args=[round(interval * 1e6), f"{(seconds_now + seconds) * 1e6 + micros:.0f}",
                                KEY_TTL_MS])
