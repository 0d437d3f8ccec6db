"""`snaprelabel enqueue JOBS`: validate every row as `run` does (rejects go to the local report),
then XADD the valid jobs in pipelined batches.

Each batch is one Lua script that also sets a marker key for the batch: a batch retried after a
lost connection (sent, but was the answer lost?) finds its marker and is not added twice. With
`--maxlen N` the stream never holds more than N jobs: enqueue waits while it is full, and the
consumers make room as they finish jobs (they delete what they acknowledge). Trimming (XADD
MAXLEN) would drop jobs nobody has done.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from .. import exitcodes
from ..jobs import RawRow, Rejection, Validator
from ..logs import log
from ..report import ReportWriter
from ..results import Result, from_rejection
from .consumer import check_keys, create_group, group_names, quoted
from .redis_link import RedisLink, RedisLost, RedisUnavailable
from .streams import QueueNames, job_message

BATCH = 500
MARKER_TTL_MS = 3_600_000
FULL = -1
WAIT_FIRST, WAIT_CAP, REPORT_EVERY = 0.2, 5.0, 30.0

# KEYS: stream, batch marker. ARGV: max length (0: none), then per job: n, n field/values.
# Answers the jobs added (those of a batch added before, if its marker exists), or -1: full.
ADD_BATCH = """
local done = redis.call('GET', KEYS[2])
if done then return tonumber(done) end
local jobs, i = 0, 2
while i <= #ARGV do jobs = jobs + 1; i = i + 1 + tonumber(ARGV[i]) end
local maxlen = tonumber(ARGV[1])
if maxlen > 0 and redis.call('XLEN', KEYS[1]) + jobs > maxlen then return -1 end
i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 1, i + n))
  i = i + 1 + n
end
redis.call('SET', KEYS[2], jobs, 'PX', %d)
return jobs
""" % MARKER_TTL_MS


@dataclass
class EnqueueSummary:
    queued: int = 0
    rejected: int = 0
    last_line: int = 0  # every row up to this input line was queued or rejected
    stopped: str | None = None


class Enqueuer:
    def __init__(self, link: RedisLink, names: QueueNames, maxlen: int | None = None) -> None:
        self.link = link
        self.names = names
        self.maxlen = maxlen or 0
        self.batch = min(BATCH, self.maxlen) if self.maxlen else BATCH
        self.stop: str | None = None  # set (to a signal's name) to stop after the current batch
        self._add = link.client.register_script(ADD_BATCH)

    async def run(self, rows: Iterable[RawRow | Rejection], validator: Validator, source: str,
                  report: ReportWriter) -> EnqueueSummary:
        await self._prepare()
        self.link.at_work()
        summary = EnqueueSummary()
        messages: list[dict[str, str]] = []
        rejects: list[Result] = []
        line = 0
        for row in rows:
            line = row.line
            item = row if isinstance(row, Rejection) else validator.validate(row)
            if isinstance(item, Rejection):
                rejects.append(from_rejection(item, validator.rules.default_project_id))
            else:
                messages.append(job_message(item, source))
            full = len(messages) >= self.batch or len(rejects) >= self.batch
            if full and not await self._flush(messages, rejects, report, summary, line):
                summary.stopped = self.stop
                return summary
        if not await self._flush(messages, rejects, report, summary, line) and messages:
            summary.stopped = self.stop  # while waiting for room: the last batch is not queued
        return summary

    async def _prepare(self) -> None:
        """The group is created with the stream, so that a consumer started later reads every
        job; but never beside another group: every group gets every job."""
        names = self.names
        await check_keys(self.link, names)
        groups = await group_names(self.link, names)
        if not groups:
            await create_group(self.link, names)
        elif len(groups) > 1:
            _warn(f"stream {names.stream} is read by the consumer groups {quoted(groups)}: every "
                  "group gets every job, so each job would be applied once per group (consume "
                  "refuses such a stream without --allow-other-groups)")
        elif groups != [names.group]:
            _warn(f"stream {names.stream} is read by the consumer group {quoted(groups)}, not "
                  f"'{names.group}' (--group): its consumers will apply the jobs")

    async def _flush(self, messages: list[dict[str, str]], rejects: list[Result],
                     report: ReportWriter, summary: EnqueueSummary, through_line: int) -> bool:
        """Queue the batch and record its rejects; False when stopped instead (nothing added)."""
        if messages:
            args: list[str | int] = [self.maxlen]
            for message in messages:
                args.append(2 * len(message))
                args += [part for pair in message.items() for part in pair]
            marker = f"{self.names.stream}:batch:{uuid.uuid4().hex}"
            if not await self._add_when_room(args, marker, len(messages)):
                return False
            summary.queued += len(messages)
            messages.clear()
        if rejects:
            report.write_batch(rejects)
            summary.rejected += len(rejects)
            rejects.clear()
        summary.last_line = through_line
        return not self.stop

    async def _add_when_room(self, args: list[str | int], marker: str, jobs: int) -> bool:
        wait, next_report = WAIT_FIRST, time.monotonic()
        while True:
            added = await self.link.call("queue jobs", lambda r: self._add(
                keys=[self.names.stream, marker], args=args))
            if added != FULL:
                return True
            if self.stop:
                return False
            if time.monotonic() >= next_report:
                next_report = time.monotonic() + REPORT_EVERY
                log.info("stream full: waiting for consumers to make room", stream=self.names.stream,
                         maxlen=self.maxlen, batch=jobs)
            await asyncio.sleep(wait)
            wait = min(wait * 2, WAIT_CAP)


def _warn(message: str) -> None:
    log.warning("other consumer groups", message=message)
    print(f"snaprelabel enqueue: warning: {message}", file=sys.stderr)


async def enqueue_file(link: RedisLink, names: QueueNames, rows: Iterable[RawRow | Rejection],
                       validator: Validator, source: str, report: ReportWriter,
                       maxlen: int | None) -> int:
    """The command: signals stop it after the current batch; answers the exit code."""
    enqueuer = Enqueuer(link, names, maxlen)
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        enqueuer.stop = signal.Signals(signum).name

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    summary = EnqueueSummary()
    try:
        summary = await enqueuer.run(rows, validator, source, report)
    except (RedisUnavailable, RedisLost) as exc:
        summary.stopped = "redis"
        print(f"snaprelabel enqueue: error: {exc}", file=sys.stderr)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await link.close()
    log.info("enqueued", stream=names.stream, queued=summary.queued, rejected=summary.rejected,
             last_line=summary.last_line, report=report.path, stopped=summary.stopped)
    message = f"queued {summary.queued} jobs to {names.stream}"
    if summary.rejected:
        message += f"; {summary.rejected} rows rejected (see {report.path})"
    if summary.stopped:
        message += (f"; stopped ({summary.stopped}): rows up to input line "
                    f"{summary.last_line} were handled, the rows after it were not queued")
    print(f"snaprelabel enqueue: {message}", file=sys.stderr)
    if summary.stopped == "redis":
        return exitcodes.FATAL
    if summary.stopped:
        return exitcodes.SIGTERM if summary.stopped == "SIGTERM" else exitcodes.SIGINT
    return exitcodes.PROBLEMS if summary.rejected else exitcodes.OK
