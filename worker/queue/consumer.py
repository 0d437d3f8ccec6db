"""The engine's two ends in queue mode: a source that reads a consumer group, and a sink that
records each result and acknowledges its entry in one atomic step.

Delivery: new entries come with XREADGROUP; entries another consumer left idle for `claim_idle`
(it died, or hangs) are taken over with XAUTOCLAIM. While this consumer holds an entry it
refreshes the entry's idle time (a heartbeat), so a job in a long backoff is never taken from a
live consumer.

What happens to an entry once its result is known:
- a final result (applied, unchanged, rejected, failed for good): the result goes to the results
  stream, and the entry is acknowledged and deleted (XACK does not delete);
- a transient failure (retries ran out on 5xx, 429, timeouts; or a 401: the consumer's
  credentials, not the job): the entry stays pending, with its last error noted, and is
  delivered again after `claim_idle`; on its `max_deliveries`-th delivery it goes to the
  dead-letter stream instead, with the reason;
- not final (this consumer is stopping): the entry is made claimable at once, and a delivery
  that never sent a request is not counted.
"Result written, entry acknowledged" is one Lua script gated on XACK: a retried commit, or two
consumers that both finished the same entry, add its result once.

A continuous stream is not one job file, so the consumer checks each message with the rules of
`run` but not for duplicates: the same snapshot may rightly come again tomorrow, and a set of
every id ever seen would grow forever. Duplicates within one file are refused by `enqueue`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from redis.exceptions import ResponseError

from ..api.errors import TRANSIENT_STATUSES
from ..errors import ConfigError
from ..jobs import Job, JobRules, Rejection, Validator
from ..logs import log
from ..redaction import SECRETS
from ..report import ReportWriter
from ..results import Outcome, Result, from_rejection
from ..stamps import now_iso
from ..stop import Stop
from .redis_link import BLOCK_MS, RedisLink, RedisLost, RedisUnavailable
from .streams import QueueNames, result_entry, row_from_message

# KEYS: stream, errors. ARGV: group, consumer, min idle ms, start id, count.
# Claims idle entries and tells, for each, how often it has been delivered and its last error;
# and how many were deleted from the stream while pending (nothing left to do).
CLAIM = """
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out = {}
local deleted = r[3] or {}  -- Redis 7 drops them from the pending list and names them here
for _, e in ipairs(r[2]) do
  if e[2] then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    local n = 0
    if p[1] then n = p[1][4] end
    out[#out + 1] = {e[1], e[2], n, redis.call('HGET', KEYS[2], e[1]) or ''}
  else
    redis.call('XACK', KEYS[1], ARGV[1], e[1])  -- Redis 6.2 answers them as nil entries
    deleted[#deleted + 1] = e[1]
  end
end
for _, id in ipairs(deleted) do redis.call('HDEL', KEYS[2], id) end
return {r[1], out, #deleted}
"""

# KEYS: stream, results, dead, errors. ARGV: group, then per entry:
#   id, n, n results-entry values, m, m dead-letter-entry values (m = 0: not dead).
# Adds the entry's result (and dead letter) only if it is still pending: a commit retried, or
# made by a second consumer, adds nothing. Nothing is written unless every key has its type, and
# the XADDs come before the XACK: one refused (maxmemory reached) leaves the entry pending.
# Answers NOGROUP when the group is gone, so results are never silently dropped after Redis lost
# its data.
COMMIT = """
redis.call('XPENDING', KEYS[1], ARGV[1])
for k, wanted in pairs({[2] = 'stream', [3] = 'stream', [4] = 'hash'}) do
  local found = redis.call('TYPE', KEYS[k]).ok
  if found ~= wanted and found ~= 'none' then
    return redis.error_reply('WRONGTYPE ' .. KEYS[k] .. ' is a ' .. found .. ', not a ' .. wanted)
  end
end
local done = 0
local i = 2
while i <= #ARGV do
  local id = ARGV[i]
  local n = tonumber(ARGV[i + 1])
  local first = i + 2
  local m = tonumber(ARGV[first + n])
  local dead_first = first + n + 1
  i = dead_first + m
  if #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1) == 1 then
    if m > 0 then redis.call('XADD', KEYS[3], '*', unpack(ARGV, dead_first, dead_first + m - 1)) end
    redis.call('XADD', KEYS[2], '*', unpack(ARGV, first, first + n - 1))
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
    redis.call('HDEL', KEYS[4], id)
    done = done + 1
  end
end
return done
"""

# KEYS: stream, errors. ARGV: group, consumer, then per entry: id, idle ms (-1: keep),
# delivery count (-1: keep), last error ('': none). Acts only on entries this consumer still
# holds; answers the ids it no longer holds.
TOUCH = """
local lost = {}
for i = 3, #ARGV, 4 do
  local id, idle, count, err = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), ARGV[i + 3]
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
  if p[1] then
    if err ~= '' then redis.call('HSET', KEYS[2], id, err) end
    -- XCLAIM would drop an entry deleted from the stream from the pending list (Redis 7), and
    -- the result of a job in flight would then never be recorded: leave that one as it is.
    if idle >= 0 and #redis.call('XRANGE', KEYS[1], id, id) == 1 then
      local args = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'IDLE', idle}
      if count >= 0 then args[#args + 1] = 'RETRYCOUNT'; args[#args + 1] = count end
      args[#args + 1] = 'JUSTID'
      redis.call(unpack(args))
    end
  else
    lost[#lost + 1] = id
  end
end
return lost
"""


# KEYS: stream. ARGV: group, consumer names. Forgets the consumers that hold no entry (deleting
# one that holds entries would drop them); answers how many it forgot.
FORGET = """
local gone = 0
for i = 2, #ARGV do
  if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[i]) == 0 then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[i])
    gone = gone + 1
  end
end
return gone
"""


KEY_TYPES = {"stream": "stream", "results": "stream", "dead": "stream", "errors": "hash"}


async def check_keys(link: RedisLink, names: QueueNames) -> None:
    """Each key of the queue is absent or of its type: a results key holding a string would
    fail every commit, and a jobs key every read."""
    keys = [getattr(names, role) for role in KEY_TYPES]

    async def types(r: Any) -> list[str]:
        async with r.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.type(key)
            return list(await pipe.execute())

    found_types = await link.call("check the queue's keys", types)
    for key, wanted, found in zip(keys, KEY_TYPES.values(), found_types, strict=True):
        if found not in ("none", wanted):
            raise ConfigError(f"{key} is a {found}, not a {wanted}: choose another --stream, or "
                              "remove that key")


async def group_names(link: RedisLink, names: QueueNames) -> list[str]:
    """The consumer groups that read the stream (none when there is no stream)."""

    async def read(r: Any) -> list[str]:
        if not await r.exists(names.stream):
            return []
        return [group["name"] for group in await r.xinfo_groups(names.stream)]

    return await link.call("list the consumer groups", read)


async def create_group(link: RedisLink, names: QueueNames, allow_other_groups: bool = False) -> None:
    """Create the group (and the stream) if needed, reading from the stream's beginning so that
    jobs queued before the first consumer started are not skipped. Every group gets every job:
    refuse a stream another group reads too (unless allowed), and leave no group behind."""

    async def create(r: Any) -> bool:
        try:
            await r.xgroup_create(names.stream, names.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False
        return True

    await check_keys(link, names)
    created = await link.call("create the consumer group", create)
    others = [group for group in await group_names(link, names) if group != names.group]
    if not others or allow_other_groups:
        return
    if created:
        await link.call("remove the group just created",
                        lambda r: r.xgroup_destroy(names.stream, names.group))
    raise ConfigError(
        f"stream {names.stream} is also read by the consumer group {quoted(others)}, besides "
        f"'{names.group}': every group gets every job, so each job would be applied once per "
        f"group; remove the other group (XGROUP DESTROY {names.stream} NAME) or pass "
        "--allow-other-groups if that is intended")


def quoted(groups: list[str]) -> str:
    return ", ".join(f"'{group}'" for group in groups)


@dataclass(slots=True)
class Delivery:
    """One delivery of a stream entry to this consumer: the engine carries it as the job's ref."""

    id: str
    message: dict[str, str]
    deliveries: int
    dead_reason: str | None = None  # set: this delivery only moves the entry to the dead letters


@dataclass(frozen=True)
class QueueOptions:
    consumer: str
    claim_idle: float = 60.0
    max_deliveries: int = 5
    batch: int = 16  # entries read at once
    until_empty: bool = False

    @property
    def claim_every(self) -> float:
        return min(max(self.claim_idle / 2, 0.2), 10.0)


class QueueConsumer:
    """Both ends, sharing what this consumer holds: `rows()` for the engine, `write_batch` as
    its sink, `heartbeat()` and `sweep()` for a periodic task, `leave()` at exit."""

    def __init__(self, link: RedisLink, names: QueueNames, options: QueueOptions, rules: JobRules,
                 stop: Stop, report: ReportWriter | None = None,
                 count: Callable[[str], None] | None = None) -> None:
        """`stop`: the job's; once asked for, no more is read, and a Redis that stays lost asks
        for it. `count(outcome)` is told each result's fate: its outcome when final, else
        redelivered, released or dead_letter (for metrics)."""
        self.link = link
        self.names = names
        self.options = options
        self.rules = rules
        self.stop = stop
        self.report = report
        self.count = count or (lambda outcome: None)
        self.failure: Exception | None = None  # why the source ended early, if it did
        self.held: dict[str, Delivery] = {}
        client = link.client
        self._claim = client.register_script(CLAIM)
        self._commit = client.register_script(COMMIT)
        self._touch = client.register_script(TOUCH)
        self._forget = client.register_script(FORGET)

    # -- source ----------------------------------------------------------------------------------

    async def rows(self) -> AsyncIterator[Job | Rejection | Result]:
        try:
            async for item in self._deliveries():
                yield item
        except (RedisUnavailable, RedisLost) as exc:
            self.failure = exc
            self.stop.request("redis", message=str(exc))

    async def _deliveries(self) -> AsyncIterator[Job | Rejection | Result]:
        loop = asyncio.get_running_loop()
        options = self.options
        next_claim = 0.0
        cursor = "0-0"
        self.link.at_work()
        while not self.stop.is_set:
            if loop.time() >= next_claim:
                cursor, claimed = await self._claim_idle(cursor)
                if cursor == "0-0":
                    next_claim = loop.time() + options.claim_every
                for item in claimed:
                    yield item
                if claimed:
                    continue
            entries = await self.link.call("read new jobs", lambda r: r.xreadgroup(
                self.names.group, options.consumer, {self.names.stream: ">"},
                count=options.batch, block=BLOCK_MS))
            fresh = entries[0][1] if entries else []
            for entry_id, fields in fresh:
                yield self._item(entry_id, fields or {}, 1)
            if not fresh and options.until_empty and await self._drained():
                return

    async def _claim_idle(self, cursor: str) -> tuple[str, list[Job | Rejection | Result]]:
        names, options = self.names, self.options
        cursor, claimed, deleted = await self.link.call("claim idle jobs", lambda r: self._claim(
            keys=[names.stream, names.errors],
            args=[names.group, options.consumer, round(options.claim_idle * 1000), cursor,
                  options.batch]))
        if deleted:
            log.warning("pending jobs deleted from the stream: no result for them", count=deleted)
        if claimed:
            log.info("claimed idle jobs", count=len(claimed), consumer=options.consumer)
        items = []
        for entry_id, flat, deliveries, last_error in claimed:
            if entry_id in self.held:  # in flight here, idle while Redis did not answer
                continue
            fields = dict(zip(flat[::2], flat[1::2], strict=False))  # a stray odd field is dropped
            items.append(self._item(entry_id, fields, int(deliveries), last_error))
        return cursor, items

    def _item(self, entry_id: str, fields: dict[str, str], deliveries: int,
              last_error: str = "") -> Job | Rejection | Result:
        delivery = Delivery(entry_id, fields, deliveries)
        self.held[entry_id] = delivery
        row = row_from_message(fields, delivery)
        if isinstance(row, Rejection):  # final, and no copy of it goes to the dead letters
            log.warning("unreadable job message", job_id=entry_id, problem=row.message)
            return row
        if deliveries > self.options.max_deliveries:
            why = f"last error: {last_error}" if last_error else (
                "no consumer finished it (each one died or stopped while holding it)")
            delivery.dead_reason = (
                f"delivered {deliveries} times, more than --max-deliveries "
                f"{self.options.max_deliveries}; {why}")
            result = from_rejection(Rejection(row.line, row.fields, [], delivery),
                                    self.rules.default_project_id)
            result.outcome = Outcome.FAILED
            return result
        # One message is one job: a fresh validator, so no duplicate check across the stream.
        return Validator(self.rules).validate(row)

    async def _drained(self) -> bool:
        """Nothing new was read, and no entry of the group is pending with anyone."""
        summary = await self.link.call("check the pending list",
                                       lambda r: r.xpending(self.names.stream, self.names.group))
        return not summary["pending"]

    # -- sink ------------------------------------------------------------------------------------

    async def write_batch(self, results: list[Result]) -> None:
        commits: list[str | int] = []
        touches: list[str | int] = []
        for result in results:
            delivery: Delivery = result.ref
            last_error = _error_text(result)
            action = self._dispose(result, delivery, last_error)
            self.count(str(result.outcome) if action == "done" else action)
            if action in ("done", "dead_letter"):
                commits += self._commit_args(result, delivery, action == "dead_letter")
            elif action == "redelivered":
                touches += [delivery.id, -1, -1, last_error]
            else:  # released: claimable by another consumer now
                unsent = result.attempts == 0
                touches += [delivery.id, round(self.options.claim_idle * 1000),
                            delivery.deliveries - 1 if unsent else -1, ""]
        if self.report is not None:
            self.report.write_batch(results)
            if self.report.sync is not None:  # durable before any entry is acknowledged
                await asyncio.to_thread(self.report.sync)
        names = self.names
        if commits:
            await self.link.call("record results", lambda r: self._commit(
                keys=[names.stream, names.results, names.dead, names.errors],
                args=[names.group, *commits]))
        if touches:
            await self.link.call("return unfinished jobs", lambda r: self._touch(
                keys=[names.stream, names.errors],
                args=[names.group, self.options.consumer, *touches]))
        for result in results:
            self.held.pop(result.ref.id, None)

    def _dispose(self, result: Result, delivery: Delivery, last_error: str) -> str:
        """What to do with the entry; annotates the result so the local report says it too."""
        if delivery.dead_reason is None and not result.outcome.final:  # interrupted, not sent
            return "released"
        if delivery.dead_reason is None and _retry_later(result):
            if delivery.deliveries < self.options.max_deliveries:
                result.error_message = (
                    f"{result.error_message} (delivery {delivery.deliveries} of "
                    f"{self.options.max_deliveries}: delivered again after --claim-idle)")
                return "redelivered"
            delivery.dead_reason = (
                f"failed again on delivery {delivery.deliveries} of "
                f"{self.options.max_deliveries} (--max-deliveries); last error: {last_error}")
        if delivery.dead_reason is not None:
            result.error_code = "dead_letter"
            result.error_message = f"moved to {self.names.dead}: {delivery.dead_reason}"
            return "dead_letter"
        return "done"

    def _commit_args(self, result: Result, delivery: Delivery, dead: bool) -> list[str | int]:
        consumer = self.options.consumer
        entry = result_entry(result, delivery.id, consumer, delivery.message, SECRETS.redact)
        args: list[str | int] = [delivery.id, 2 * len(entry), *_flat(entry)]
        if not dead:
            return [*args, 0]
        letter = {**delivery.message, "job_id": delivery.id, "deliveries": str(delivery.deliveries),
                  "reason": SECRETS.redact(delivery.dead_reason or ""), "consumer": consumer,
                  "dead_at": now_iso()}
        return [*args, 2 * len(letter), *_flat(letter)]

    # -- upkeep ----------------------------------------------------------------------------------

    async def heartbeat(self) -> None:
        """Reset the idle time of every entry held here, so no live consumer loses its jobs."""
        ids = list(self.held)
        if not ids:
            return
        args: list[str | int] = [self.names.group, self.options.consumer]
        for entry_id in ids:
            args += [entry_id, 0, -1, ""]
        lost = await self._touch(keys=[self.names.stream, self.names.errors], args=args)
        lost = [entry_id for entry_id in lost if entry_id in self.held]  # not just committed
        if lost:
            log.warning("jobs taken over by another consumer while held here", count=len(lost),
                        consumer=self.options.consumer)

    async def sweep(self, idle_over: float) -> int:
        """Forget consumers idle this long that hold nothing (pods long gone), so the group's
        list of consumers does not grow with every restart."""
        consumers = await self.link.client.xinfo_consumers(self.names.stream, self.names.group)
        idle = [c["name"] for c in consumers
                if c["pending"] == 0 and c["idle"] >= idle_over * 1000 and c["name"] != self.options.consumer]
        if not idle:
            return 0
        return int(await self._forget(keys=[self.names.stream], args=[self.names.group, *idle]))

    async def release_held(self) -> None:
        """At exit: entries read but never given a result become claimable at once."""
        if not self.held:
            return
        args: list[str | int] = [self.names.group, self.options.consumer]
        for delivery in self.held.values():
            args += [delivery.id, round(self.options.claim_idle * 1000), -1, ""]
        try:
            await self._touch(keys=[self.names.stream, self.names.errors], args=args)
        except Exception as exc:
            log.warning("could not release held jobs", count=len(self.held), error=str(exc))
        self.held.clear()

    async def leave(self) -> None:
        """At exit: leave the group if this consumer holds nothing (else the others need its
        name until they have taken its entries over)."""
        await self.release_held()
        with suppress(Exception):
            await self._forget(keys=[self.names.stream], args=[self.names.group, self.options.consumer])


def _retry_later(result: Result) -> bool:
    """Failed for a reason that may pass: worth another delivery. A 401 is this consumer's
    credentials, not the job: it waits for credentials that work (a consumer whose credentials
    are refused for good stops)."""
    return result.outcome == Outcome.FAILED and (
        result.http_status is None or result.http_status in TRANSIENT_STATUSES
        or result.http_status == 401 or result.error_code == "unreadable_response")


def _error_text(result: Result) -> str:
    status = result.http_status if result.http_status is not None else "no answer"
    return SECRETS.redact(f"HTTP {status} {result.error_code or ''}: {result.error_message or ''}")


def _flat(fields: dict[str, str]) -> list[str]:
    return [part for pair in fields.items() for part in pair]
