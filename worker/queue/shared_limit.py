"""One rate limit for every replica that sends to the same endpoint and project, kept in Redis.

GCRA as a reservation, in one Lua script on the Redis clock (`TIME`), so replicas on hosts with
different clocks agree. The key holds the theoretical arrival time (TAT) of the next request:

    slot = max(now, TAT, pause_until);  TAT = slot + interval;  reply: now, slot

Each request costs one round trip; nobody polls: the caller sleeps until its own slot, whatever
the number of waiters, mapping the slot to its own clock (RedisClock) so that the time a reply
took does not shift the request. Slots are `interval = (1 + margin) / rate` apart: replicas on different
hosts reach the API with different delays, and an even schedule with a 5 % margin tolerates up to
50 ms of difference in delay before a one-second window on the server's clock could hold more
than `rate` requests.

A 429 seen by any replica sets a shared pause-until key (its Retry-After, or the throttled
backoff, at most MAX_SHARED_PAUSE): every later slot starts after it. Each call also registers
the replica in a sorted set, so every replica knows how many share the limit. When Redis cannot
be reached, or answers an error, the limiter falls back to a local limit of rate / replicas (the
last count seen) and tries Redis again a second later.

Under --rate auto (shared_auto.py) the interval, and a time before which no slot is given, are
the learner's, read from Redis by the same script; each replica then books one slot at a time.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ..logs import log
from ..quota import Quota
from ..rate import PACING_MARGIN, AdaptiveRateLimiter, Limiter, RateLimiter

if TYPE_CHECKING:
    from .shared_auto import Outcomes

# An outage, or an error answered (a key of another type, OOM): the local share is safe meanwhile.
REDIS_FAILURES = (RedisError, OSError)

SHARED_PACING_MARGIN = 0.05
REPLICA_TTL_MS = 30_000  # a replica that asked for no slot for this long no longer counts
RETRY_REDIS_AFTER = 1.0  # seconds on the local fallback before asking Redis again
# A caller woken this much after its slot gives the slot up and takes a new one: well inside the
# margin's 50 ms, so a late request never arrives among its successors' slots.
LATE_SLACK = 0.015
# Under --rate auto, a replica asleep on a slot further off than this looks every FAR_SLOT whether
# the learning has moved the schedule up since (one GET): a slot booked at a closed window's pace.
FAR_SLOT = 0.1
# Under --rate auto, a replica that hears a 429 takes no slot for this long: about when the
# learning has read it and every replica's answers before it (shared_auto.LATE_BATCH) and decided.
# The learning holds every replica's schedule only once it reads the 429: meanwhile, at the end of
# the ramp, the pace ran on (25-29 requests refused in 10 ms at 240/20 s, three replicas).
OWN_429_HOLD = 0.03
# The longest pause one 429 may impose on every replica. A gateway counts per second or per
# minute (APIGW.0308), so after a minute the window is a new one; a longer Retry-After (one
# gateway's bug, or 1e9) would stop every replica, new ones included, for as long.
MAX_SHARED_PAUSE = 60.0
# The intervals --rate auto's shared learning may set, in µs (worker/queue/shared_auto.py).
AUTO_INTERVALS_US = [round((1 + PACING_MARGIN) / rate * 1e6)
                     for rate in (AdaptiveRateLimiter.MAX, AdaptiveRateLimiter.FLOOR)]

# KEYS: tat, pause-until, replicas, interval, not-before. ARGV: interval µs, replica name,
# replica ttl µs, max pause µs, '1' to follow the interval and not-before that --rate auto's
# learning sets (worker/queue/shared_auto.py), and the shortest and longest interval it may set
# (whatever is in Redis: never faster than --rate auto's maximum, nor stopped). Times are integer
# microseconds of the Redis clock; '%.0f' keeps them exact (Lua numbers are doubles: exact to
# 2^53 µs, and tostring would round them).
RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1])) or 0  -- garbage: none
local pause = tonumber(redis.call('GET', KEYS[2])) or 0
local not_before = 0
if ARGV[5] == '1' then
  interval = tonumber(redis.call('GET', KEYS[4])) or interval
  interval = math.min(math.max(interval, tonumber(ARGV[6])), tonumber(ARGV[7]))
  not_before = math.min(tonumber(redis.call('GET', KEYS[5])) or 0, now + tonumber(ARGV[4]))
end
local max_pause = tonumber(ARGV[4])
if pause > now + max_pause then  -- written by an older replica, or by hand: cut it down
  pause = now + max_pause
  redis.call('SET', KEYS[2], string.format('%.0f', pause), 'PX', math.floor(max_pause / 1000) + 1)
end
local slot = math.max(now, tat, pause, not_before)
local ttl_ms = math.floor((slot + interval - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', slot + interval), 'PX', ttl_ms)
redis.call('ZADD', KEYS[3], string.format('%.0f', now), ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', string.format('%.0f', now - tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[3], math.floor(tonumber(ARGV[3]) / 1000))
return {string.format('%.0f', now), string.format('%.0f', slot), redis.call('ZCARD', KEYS[3]),
        string.format('%.0f', pause), string.format('%.0f', interval)}
"""

# KEYS: pause-until. ARGV: pause µs, max pause µs. Only ever lengthens the pause, up to the max.
PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local pause = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]))
local untl = now + pause
local current = tonumber(redis.call('GET', KEYS[1])) or 0
if untl > current then
  redis.call('SET', KEYS[1], string.format('%.0f', untl), 'PX', math.floor(pause / 1000) + 1)
end
return 0
"""


def limit_key(endpoint: str, project_id: str | None) -> str:
    """The shared limit's key prefix; the hash tag keeps its keys in one Redis Cluster slot."""
    return f"snaprelabel:limit:{{{endpoint}|{project_id or '*'}}}"


class SharedLimiter:
    """`rate` None: --rate auto, at the interval the shared learning sets (shared_auto.py), told
    every grant and answer through `outcomes`."""

    def __init__(self, client: Redis, key: str, rate: float | None, replica: str,
                 throttled_backoff: float, max_pause: float = MAX_SHARED_PAUSE,
                 outcomes: Outcomes | None = None) -> None:
        self.auto = rate is None
        self.rate = AdaptiveRateLimiter.START if rate is None else rate
        self.outcomes = outcomes
        self.replica = replica
        self.throttled_backoff = throttled_backoff
        self.max_pause = max_pause
        self._max_pause_us = round(max_pause * 1_000_000)
        self.replicas = 1  # replicas sharing the limit, as last counted by Redis
        self.fallback: Limiter | None = None  # set while Redis is unreachable
        self._keys = [f"{key}:tat", f"{key}:pause", f"{key}:replicas", f"{key}:interval",
                      f"{key}:not-before"]
        # Under --rate auto the 429s bound the pace: the margin is the local pacer's.
        self._margin = PACING_MARGIN if self.auto else SHARED_PACING_MARGIN
        self._interval_us = round((1.0 + self._margin) / self.rate * 1_000_000)
        self._follow = "1" if self.auto else "0"
        # Under --rate auto a replica books one slot at a time, its senders queued behind it: a
        # slot booked stands whatever the learning decides next, and a hundred senders booking
        # at once would hold a hundred slots at a pace the next 429 makes too fast.
        self._turn = asyncio.Lock() if self.auto else None
        self._client = client
        self._reserve = client.register_script(RESERVE)
        self._pause = client.register_script(PAUSE)
        self.clock = RedisClock()
        self._paused_until = 0.0  # loop time: a pause this replica knows of
        self._retry_redis_at = 0.0
        self._pauses: set[asyncio.Task[None]] = set()

    async def acquire(self) -> None:
        if self._turn is None:
            await self._acquire()
            return
        async with self._turn:
            await self._acquire()

    async def _acquire(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if loop.time() < self._paused_until:
                await asyncio.sleep(self._paused_until - loop.time())
            if self.fallback is not None and loop.time() < self._retry_redis_at:
                await self.fallback.acquire()
            else:
                if self.fallback is not None:  # one caller probes Redis, the others stay local
                    self._retry_redis_at = loop.time() + RETRY_REDIS_AFTER
                sent = loop.time()
                try:
                    now, slot, self.replicas, pause, interval = await self._reserve(
                        keys=self._keys,
                        args=[self._interval_us, self.replica, REPLICA_TTL_MS * 1000,
                              self._max_pause_us, self._follow, *AUTO_INTERVALS_US],
                    )
                except REDIS_FAILURES as exc:
                    self._fall_back(loop.time(), exc)
                    continue
                if self.fallback is not None:
                    log.warning("shared rate limit: back on Redis", rate=self.rate,
                                replicas=self.replicas)
                    self.fallback = None
                self.clock.sample(int(now) / 1e6, sent, loop.time())
                if self.auto:  # the learnt rate, for --concurrency auto and a fallback
                    self.rate = (1.0 + self._margin) / (int(interval) / 1e6)
                self._paused_until = max(self._paused_until, self.clock.local(int(pause) / 1e6))
                local_slot = self.clock.local(int(slot) / 1e6)
                if await self._sleep_until(local_slot, int(slot)):
                    continue  # the learning moved the schedule up meanwhile: a sooner slot
                if loop.time() - local_slot > LATE_SLACK:
                    # Woken late (a busy host): sent now, this request would crowd the ones the
                    # other replicas send on time into one window. Leave the slot empty.
                    continue
            # A pause learnt while this caller slept voids its slot: take a new one after it.
            if loop.time() >= self._paused_until:
                if self.outcomes is not None and self.fallback is None:
                    self.outcomes.granted(self.clock.remote(loop.time()))
                return

    async def _sleep_until(self, local_slot: float, slot_us: int) -> bool:
        """Sleep until this replica's slot. Under --rate auto a slot far off was booked at a
        closed window's pace (a trickle, a try when the second must have turned): if the
        learning moves the schedule up meanwhile (the window reopened: the next free slot is now
        before this one), True, and the slot is given up for a sooner one. Asleep to the end, the
        three replicas of a bench run resumed 0.65 s after the reopening, each on the slot it had
        booked a try's spacing after the try."""
        loop = asyncio.get_running_loop()
        while self.auto and local_slot - loop.time() > FAR_SLOT:
            await asyncio.sleep(FAR_SLOT)
            try:
                tat = await self._client.get(self._keys[0])
                if tat is not None and int(tat) < slot_us:
                    return True
            except (*REDIS_FAILURES, ValueError):
                pass  # Redis away, or not a number there: the slot stands
        delay = local_slot - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        return False

    def observe(self, status: int | None, retry_after: float | None,
                quota: Quota | None = None, server_second: int | None = None) -> None:
        loop = asyncio.get_running_loop()
        if self.fallback is not None:
            self.fallback.observe(status, retry_after, quota, server_second)
        elif self.outcomes is not None:
            self.outcomes.answered(self.clock.remote(loop.time()), status, retry_after, quota, server_second)
        if status != 429:
            return
        if self.auto and self.fallback is None:
            self._paused_until = max(self._paused_until, loop.time() + OWN_429_HOLD)
        pause = self.throttled_backoff if retry_after is None or math.isnan(retry_after) else retry_after
        pause = min(max(pause, 0.0), self.max_pause)
        if pause <= 0:
            return
        self._paused_until = max(self._paused_until, loop.time() + pause)
        task = loop.create_task(self._share_pause(pause))
        self._pauses.add(task)  # keep a reference until it is done
        task.add_done_callback(self._pauses.discard)

    def unused(self) -> None:
        if self.fallback is not None:
            self.fallback.unused()  # the shared schedule's slot simply passes

    async def _share_pause(self, seconds: float) -> None:
        try:
            await self._pause(keys=self._keys[1:2],
                              args=[round(seconds * 1_000_000), self._max_pause_us])
        except REDIS_FAILURES:
            pass  # Redis is down: this replica pauses on its own, the others see their own 429s

    def _fall_back(self, now: float, exc: BaseException) -> None:
        self._retry_redis_at = now + RETRY_REDIS_AFTER
        if self.fallback is None:
            local_rate = self.rate / max(1, self.replicas)
            log.warning("shared rate limit: Redis unreachable, falling back to a local share",
                        rate=round(local_rate, 3), replicas=self.replicas,
                        error=f"{type(exc).__name__}: {exc}")
            # Under --rate auto the share goes on adapting, alone, from the 429s it gets.
            self.fallback = AdaptiveRateLimiter(local_rate) if self.auto else RateLimiter(local_rate)


class RedisClock:
    """Maps Redis' clock to the event loop's. Each reply carries Redis' `now`; the estimate of the
    offset comes from the quickest recent round trip, so a reply that was slow to send or to read
    does not move the schedule: every replica sends at its slot, whatever its round trips."""

    KEEP = 5.0  # seconds a best sample is trusted before a newer one replaces it

    def __init__(self) -> None:
        self._offset: float | None = None  # Redis time minus loop time
        self._rtt = 0.0
        self._at = 0.0

    def sample(self, redis_now: float, sent: float, received: float) -> None:
        rtt = received - sent
        if self._offset is None or rtt <= self._rtt or received - self._at > self.KEEP:
            self._offset = redis_now - (sent + received) / 2
            self._rtt, self._at = rtt, received

    def local(self, redis_time: float) -> float:
        assert self._offset is not None
        return redis_time - self._offset

    def remote(self, local_time: float) -> float:
        """A time of this loop on Redis' clock (the loop's own before the first sample)."""
        return local_time + (self._offset or 0.0)


class Combined:
    """Two limits in turn: the local per-replica cap first, then the shared slot, so the request
    leaves at the time the shared schedule gave it."""

    def __init__(self, local: Limiter, shared: Limiter) -> None:
        self.local = local
        self.shared = shared

    async def acquire(self) -> None:
        await self.local.acquire()
        await self.shared.acquire()

    def observe(self, status: int | None, retry_after: float | None,
                quota: Quota | None = None, server_second: int | None = None) -> None:
        self.local.observe(status, retry_after, quota, server_second)
        self.shared.observe(status, retry_after, quota, server_second)

    def unused(self) -> None:
        self.local.unused()
        self.shared.unused()
