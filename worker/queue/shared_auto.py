"""`--rate auto` for replicas that share a quota: what one replica learns, all use.

The learned state lives in one Redis hash next to the shared limit's keys, read and written only
by two Lua scripts on the Redis clock, so every replica paces from one schedule at one learned
rate and adapts from any replica's 429s:

- RESERVE_AUTO: the GCRA slot of shared_limit.RESERVE, at the learned rate (or, while a window
  is closed, at the trickle's spacing); at the end of a round it grows the rate (slow start, then
  additive increase to HOLD_AT of the ceiling, a hold for the probe gap, then a probe), once per
  round for all replicas.
- ANSWER_AUTO: every answer of every replica. An accepted one is counted, and reopens a closed
  window: the pace is then what the window took from the last opening to this one. A 429: a
  stated limit is the ceiling at once (a window longer than a second: its pace, N/W); a
  Retry-After pauses every replica; a cut is made once per HOLD for all of them; nothing
  accepted for CLOSED_AFTER after a cut is a closed window (no cut to the floor: the trickle
  finds when it reopens).

The rules and constants are AdaptiveRateLimiter's (worker/rate.py, docs/design.md#adaptive-rate);
the per-window probing (a faster window now and then to find a raised N) is the single process
limiter's only: replicas hold the pace learnt at the last reopening until the next closure.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from redis.asyncio import Redis

from ..quota import Quota
from ..rate import AdaptiveRateLimiter as Rules
from ..rate import Limiter
from .shared_limit import REDIS_FAILURES, REPLICA_TTL_MS, SHARED_PACING_MARGIN, SharedLimiter

# Shared by both scripts: the learned state, read into locals and written back.
_STATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local f = redis.call('HMGET', SK, 'rate', 'ceiling', 'cut', 'round', 'granted', 'accepted',
  'lastok', 'closed', 'opened', 'took', 'pace', 'window', 'held', 'gap', 'stated', 'statedw',
  'trickle')
local s = {rate = tonumber(f[1]) or tonumber(ARGV[1]), ceiling = tonumber(f[2]),
  cut = tonumber(f[3]) or 0, round = tonumber(f[4]) or now, granted = tonumber(f[5]) or 0,
  accepted = tonumber(f[6]) or 0, lastok = tonumber(f[7]) or 0, closed = tonumber(f[8]) or 0,
  opened = tonumber(f[9]) or now, took = tonumber(f[10]) or 0, pace = tonumber(f[11]),
  window = tonumber(f[12]), held = tonumber(f[13]) or 0, gap = tonumber(f[14]) or 0,
  stated = tonumber(f[15]), stated_window_s = tonumber(f[16]), trickle = tonumber(f[17])}
local C = cjson.decode(ARGV[2])
local function save()
  local out = {}
  for k, v in pairs(s) do
    if k == 'stated_window_s' then k = 'statedw' end
    out[#out + 1] = k; out[#out + 1] = string.format('%.17g', v)
  end
  redis.call('HSET', SK, unpack(out))
  redis.call('PEXPIRE', SK, 600000)  -- forgotten ten minutes after the last replica left
end
"""

# KEYS: tat, pause, replicas, state. ARGV: start rate, constants (JSON), replica, replica ttl µs,
# max pause µs.
RESERVE_AUTO = "local SK = KEYS[4]" + _STATE + """
local length = (s.ceiling == nil) and C.slow_round or C.round
if now >= s.round + length then
  local used = s.granted + 1 >= C.used * s.rate * (now - s.round) / 1000000
  if used and now >= s.cut + C.hold and s.closed == 0 and s.pace == nil then
    if s.ceiling == nil then
      s.rate = math.min(C.max, s.rate * 2)
    elseif s.rate < C.hold_at * s.ceiling * (1 - 1e-9) then
      s.rate = math.min(s.rate + C.step * s.ceiling, C.hold_at * s.ceiling)
    else
      if s.held == 0 then s.held = now end
      if now >= s.held + s.gap then s.rate = math.min(C.max, s.rate + C.step * s.ceiling) end
    end
  end
  s.round = now
  s.granted = 0
  s.accepted = 0
end
local pause = tonumber(redis.call('GET', KEYS[2])) or 0
local max_pause = tonumber(ARGV[5])
if pause > now + max_pause then pause = now + max_pause end
local slot
local granted = 1
if s.closed > 0 then
  -- One request now and then, for all replicas; the others are told when to ask again, and
  -- book nothing (booked at the trickle's pace, a queue of waiters would outlast the closure).
  local spacing = math.min(C.trickle_most, math.max(C.trickle_first, 0.2 * (now - s.closed)))
  local at = math.max(s.trickle or 0, pause)
  if now >= at then
    -- A little ahead: a reply slower than LATE_SLACK would have the slot given up (and the
    -- trickle with it), and a request to a closed window need not be punctual.
    slot = now + 100000
    s.trickle = now + spacing
  else
    slot = at
    granted = 0
  end
else
  local interval = (1 + C.margin) / s.rate * 1000000
  local tat = tonumber(redis.call('GET', KEYS[1])) or 0
  if tat > now + interval then tat = now + interval end
  slot = math.max(now, tat, pause)
  redis.call('SET', KEYS[1], string.format('%.0f', slot + interval), 'PX',
    math.floor((slot + interval - now) / 1000) + 1000)
end
redis.call('ZADD', KEYS[3], string.format('%.0f', now), ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', string.format('%.0f', now - tonumber(ARGV[4])))
redis.call('PEXPIRE', KEYS[3], math.floor(tonumber(ARGV[4]) / 1000))
s.granted = s.granted + granted
save()
return {string.format('%.0f', now), string.format('%.0f', slot), redis.call('ZCARD', KEYS[3]),
        string.format('%.0f', pause), string.format('%.6f', s.closed > 0 and (s.pace or s.rate) or s.rate),
        granted}
"""

# KEYS: pause, state. ARGV: start rate, constants (JSON), status, Retry-After µs (-1: none),
# stated limit (-1: none), stated window µs, max pause µs.
ANSWER_AUTO = "local SK = KEYS[2]" + _STATE + """
if tonumber(ARGV[3]) ~= 429 then
  s.accepted = s.accepted + 1
  s.took = s.took + 1
  s.lastok = now
  if s.closed > 0 then  -- reopened: between the last refused request and this one
    local spacing = math.min(C.trickle_most, math.max(C.trickle_first, 0.2 * (now - s.closed)))
    local opened = now - 0.5 * spacing
    local closed_for = opened - s.closed
    s.closed = 0
    if now - s.cut >= C.min_closed or s.pace or s.stated then
      local span = opened - s.opened
      if s.stated_window_s and s.stated_window_s > 1 then
        s.pace = s.stated
      else
        -- What the window took, from the last opening (or the start) to this one.
        s.pace = math.max(C.floor, (s.took - 1) / math.max(span, 1000000) * 1000000)
        if s.window == nil or closed_for > s.window then s.window = span
        else s.window = math.min(s.window, span) end
      end
      s.rate = s.pace
      s.ceiling = s.pace
      s.opened = opened
      s.took = 1
      s.cut = now
    end
  end
  save()
  return 0
end
local retry_after = tonumber(ARGV[4])
local limit = tonumber(ARGV[5])
if limit > 0 then
  local window = tonumber(ARGV[6])
  s.stated = limit / window * 1000000
  s.ceiling = s.stated
  if window > 1000000 then
    s.pace = s.stated
    s.window = window
    s.stated_window_s = window / 1000000
  elseif s.rate > s.stated then
    s.rate = s.stated
  end
end
if retry_after > 0 then
  local wait = math.min(retry_after, tonumber(ARGV[7]))
  local untl = now + wait
  if untl > (tonumber(redis.call('GET', KEYS[1])) or 0) then
    redis.call('SET', KEYS[1], string.format('%.0f', untl), 'PX', math.floor(wait / 1000) + 1)
  end
  if wait >= C.window_pause and s.closed == 0 then s.closed = now end
end
if s.closed > 0 then
  -- closed already: the trickle goes on
elseif s.pace ~= nil and now >= s.cut + C.hold then
  s.closed = now  -- a window seen closing before closed again
elseif s.lastok <= s.cut and s.cut > 0 then
  -- nothing accepted since the cut (its senders may all be backing off): a closed window
  if now - s.cut >= C.closed_after then s.closed = now end
elseif now < s.cut + C.hold then
  -- answers to requests sent before the cut
else
  local elapsed = math.max(now - s.round, 100000) / 1000000
  local accepted = s.accepted / elapsed
  -- Counted over a round that may have just begun, and from replicas whose senders may be
  -- backing off: never trusted below half the rate (a cut per HOLD halves at most).
  local ref = (accepted >= C.near * s.rate) and s.rate or math.max(accepted, 0.5 * s.rate)
  if s.stated then ref = math.min(ref, s.stated) end
  ref = math.max(C.floor, ref)
  local again = s.ceiling ~= nil and math.abs(ref - s.ceiling) <= C.confirm * s.ceiling
  local first = math.max(1, C.probe_requests / ref) * 1000000
  if again or s.stated then
    s.gap = math.min(C.gap_limit * 1000000, math.max(2 * s.gap, first))
    s.rate = C.hold_at * ref
  else
    s.gap = first
    s.rate = C.backoff * ref
  end
  s.rate = math.max(C.floor, s.rate)
  s.ceiling = ref
  s.cut = now
  s.held = 0
  s.round = now
  s.granted = 0
  s.accepted = 0
end
save()
return 0
"""


def _constants() -> str:
    r = Rules
    us = 1_000_000
    values = {
        "floor": r.FLOOR, "max": r.MAX, "backoff": r.BACKOFF, "hold_at": r.HOLD_AT,
        "confirm": r.CONFIRM, "step": r.STEP, "hold": r.HOLD * us, "round": r.ROUND * us,
        "slow_round": r.SLOW_ROUND * us, "used": r.USED, "near": r.NEAR,
        "probe_requests": r.PROBE_REQUESTS, "gap_limit": r.CHEAP_GAP,
        "closed_after": r.CLOSED_AFTER * us, "min_closed": r.MIN_CLOSED * us,
        "window_pause": r.WINDOW_PAUSE * us, "trickle_first": r.TRICKLE[0] * us,
        "trickle_most": r.TRICKLE[1] * us, "margin": SHARED_PACING_MARGIN,
    }
    return json.dumps(values)


class SharedAutoLimiter(SharedLimiter):
    """`--rate auto` shared by every replica of an endpoint and project (see the module's doc)."""

    def __init__(self, client: Redis, key: str, replica: str, throttled_backoff: float,
                 start: float = Rules.START) -> None:
        super().__init__(client, key, start, replica, throttled_backoff)
        self.start = start
        self.shared_rate = start  # the rate all replicas together are paced at, as last read
        self._keys = [*self._keys, f"{key}:auto"]
        self._constants = _constants()
        self._reserve = client.register_script(RESERVE_AUTO)
        self._answer = client.register_script(ANSWER_AUTO)

    @property
    def rate(self) -> float:
        """This replica's share: what it plans its senders for (--concurrency auto)."""
        return self.shared_rate / max(1, self.replicas)

    @rate.setter
    def rate(self, value: float) -> None:
        self.shared_rate = value

    async def _reserve_slot(self) -> list[Any]:
        while True:
            now, slot, replicas, pause, rate, granted = await self._reserve(
                keys=self._keys,
                args=[self.start, self._constants, self.replica, REPLICA_TTL_MS * 1000,
                      self._max_pause_us])
            self.shared_rate = float(rate)
            if int(granted):
                return [now, slot, replicas, pause]
            # A closed window: ask again when the next of its trickle may go (no slot booked).
            await asyncio.sleep(max(0.01, min((int(slot) - int(now)) / 1e6, 2.0)))

    def observe(self, status: int | None, retry_after: float | None,
                quota: Quota | None = None) -> None:
        if self.fallback is not None:
            self.fallback.observe(status, retry_after, quota)
        if status is None:
            return
        if status == 429 and retry_after is not None and retry_after == retry_after:  # nan: none
            loop = asyncio.get_running_loop()
            wait = min(max(retry_after, 0.0), self.max_pause)
            self._paused_until = max(self._paused_until, loop.time() + wait)
        # Every answer is told at once: a closed window's reopening is seen by its first 200.
        task = asyncio.get_running_loop().create_task(self._tell(status, retry_after, quota))
        self._pauses.add(task)
        task.add_done_callback(self._pauses.discard)

    async def _tell(self, status: int, retry_after: float | None, quota: Quota | None) -> None:
        us = 1_000_000
        wait = -1 if retry_after is None or retry_after != retry_after else round(retry_after * us)
        try:
            await self._answer(
                keys=[self._keys[1], self._keys[3]],
                args=[self.start, self._constants, status, wait,
                      quota.limit if quota else -1, round(quota.window * us) if quota else -1,
                      self._max_pause_us])
        except REDIS_FAILURES:
            pass  # Redis is down: the local fallback adapts on its own meanwhile

    def _local_share(self, rate: float) -> Limiter:
        return Rules(start=max(Rules.FLOOR, rate))
