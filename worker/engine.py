"""The pipeline of one job, bounded everywhere so memory stays flat on a million rows:

    rows ──► validate ──► bounded queue ──► N senders ──► results ──► one writer ──► sinks
             (rejects go straight to results)

Every input row ends as exactly one result. The writer drains results in batches, hands each
batch to the sinks (report, then whatever must wait for durability, such as queue acks), and only
then counts the rows as done. A sink may be async: the next batch waits for it. A sender takes its
next row only once the result of its last one is written: at any moment at most `concurrency` rows
are sent but not yet in the report, which bounds what a kill -9 can make --resume send twice.

Resume: rows whose line is in `skip` (final in the report already) are validated, so duplicate
detection still sees them, and then dropped.

The rows come from a file (an iterator, read and validated in a thread:
docs/design.md#reader-thread) or from a queue (an async iterator, unbounded: it ends when the
engine stops, and what it has not delivered stays queued). A source may also hand over a finished
Result (a queue's dead letter): it goes straight to the writer.

Stopping (worker/stop.py): once the job's Stop is asked for, no row is taken and no attempt made;
the requests in flight finish within the grace period, and every row that did not finish is
recorded with the stop's outcome (`interrupted`), the rows not yet read included. When the grace
runs out, what is in flight is cancelled; a second signal also stops recording the rows not yet
read.

A failure of the engine's own (a sink that cannot write, such as a full disk; a bug in a sender or
the reader) is fatal: the row at hand is recorded where possible, the job stops at once, and
`fatal` says why (exit code 4). Nothing is swallowed.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Container, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from . import concurrency as auto
from .concurrency import ConcurrencySizer
from .jobs import Job, RawRow, Rejection, Validator
from .live import LiveState
from .logs import held_lines, log
from .progress import Progress
from .relabel import Relabeler
from .results import Outcome, Result, from_job, from_rejection
from .stop import Stop

# What a source hands over: a file's rows (read in a thread), or a queue's (async; it may also
# hand over a validated Job, or a finished Result such as a dead letter).
Item = Job | RawRow | Rejection | Result
Source = Iterator[RawRow | Rejection] | AsyncIterator[Item]

BATCH = 256  # rows read and validated per hop to the reader thread
# Group commit (docs/design.md#durability): a small batch waits up to GROUP_WINDOW seconds for the
# rows finishing just after it, so that they share one report write, one fsync and one log flush.
# It ends early once GROUP_ENOUGH rows wait, or every sender is waiting for the writer (nothing
# more can come). Senders count the wait as busy time, so --concurrency auto keeps the rate.
GROUP_WINDOW = 0.05
GROUP_ENOUGH = 16
RESULTS_HIGH_WATER = 4096  # the reader waits while this many results await the writer
RESIZE_EVERY = 0.05  # seconds between checks of the number of senders (--concurrency auto)


class Sink(Protocol):
    """A sink may also have `sync()` (make what was written durable): the writer runs it in a
    thread after write_batch, before the next sink sees the batch."""

    def write_batch(self, results: list[Result]) -> None | Awaitable[None]:
        """Called by the single writer task, in order, and awaited when it returns an awaitable.
        Raising stops the job."""


@dataclass
class Summary:
    counts: Counter[Outcome] = field(default_factory=Counter)
    elapsed: float = 0.0
    requests: int = 0
    achieved_rate: float = 0.0  # requests/s from the first send to the last (retry.Counters)
    busiest_second: int = 0  # the most requests sent within any one second: the limit's measure
    retries: int = 0
    throttled: int = 0
    concurrency: int = 0  # the most senders at once (what --concurrency auto chose)
    stopped: str | None = None  # why the job stopped early, if it did
    skipped: int = 0  # rows already final in the report (--resume): not run again

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def as_fields(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            **{str(outcome): self.counts[outcome] for outcome in Outcome if self.counts[outcome]},
            "requests": self.requests,
            "retries": self.retries,
            "throttled": self.throttled,
            **({"skipped": self.skipped} if self.skipped else {}),
            **({"concurrency": self.concurrency} if self.concurrency else {}),
            "elapsed_s": round(self.elapsed, 3),
            "requests_per_s": round(self.achieved_rate, 2),
            "busiest_second": self.busiest_second,
            **({"stopped": self.stopped} if self.stopped else {}),
        }


class Engine:
    def __init__(
        self,
        rows: Source,
        validator: Validator,
        relabeler: Relabeler | None,
        sinks: list[Sink],
        stop: Stop,
        concurrency: int = 16,
        progress: Progress | None = None,
        log_successes: bool = True,
        on_result: Callable[[Result], None] | None = None,
        gate: Callable[[Job], Awaitable[None]] | None = None,
        skip: Container[int] | None = None,
        live: LiveState | None = None,
        sizer: ConcurrencySizer | None = None,
    ) -> None:
        """`relabeler` None means a dry run: valid rows are reported, nothing is sent.
        `on_result` sees every result once it is recorded (worker.safety may stop the job from
        it); `gate` is awaited before each valid job is queued (the canary holds the reader).
        `skip`: input lines not to run again (--resume); `live`: checked before each PUT
        (--skip-unchanged). With a `sizer`, the number of senders follows it (`--concurrency
        auto`) instead of being `concurrency`."""
        self._rows = rows
        self._validator = validator
        self._relabeler = relabeler
        self._sinks = sinks
        self._concurrency = max(1, concurrency)
        self._progress = progress
        self._log_successes = log_successes
        self._on_result = on_result
        self._gate = gate
        self._skip = skip
        self._live = live
        self._sizer = sizer
        self._active = 0  # senders running
        self._keep = 0  # --concurrency auto: senders beyond this many retire (see _resize)
        most = auto.MAX if sizer else self._concurrency
        self._jobs: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=2 * most)
        self._job_taken = asyncio.Event()  # a sender took a job or ended: the reader may go on
        self._results: asyncio.Queue[Result | None] = asyncio.Queue()
        self._room = asyncio.Event()  # set while the results queue is below its high water
        self._room.set()
        self._emitted = 0  # results put on the queue so far
        self._written = 0  # results the writer is done with (FIFO: the first _written emitted)
        self._batch_written = asyncio.Event()  # replaced by a fresh one after each batch
        self._recording = 0  # senders waiting until their result is written
        self._gathering: asyncio.Future[None] | None = None  # the writer's group-commit window
        self._stop = stop
        self._stopping = stop.requested
        self._senders: set[asyncio.Task[None]] = set()  # running ones: each leaves when done
        self._reader: asyncio.Task[None] | None = None
        self.summary = Summary()
        self.fatal: BaseException | None = None  # the job cannot go on (see the module's doc)
        stop.on_hurry(self._cancel)
        stop.on_request(self._job_taken.set)

    # -- control -------------------------------------------------------------------------------

    def set_total(self, rows: int | None) -> None:
        """The input's row count, once known (counted in a thread while the job runs)."""
        if self._progress is not None:
            self._progress.set_total(rows)

    def _cancel(self, reader_too: bool) -> None:
        for task in (*self._senders, *([self._reader] if self._reader and reader_too else [])):
            task.cancel()

    def _fail(self, exc: BaseException, what: str) -> None:
        """A failure of the engine's own: fatal, loud, at once."""
        if self.fatal is None:
            self.fatal = exc
            log.error(f"{what}: stopping", error=f"{type(exc).__name__}: {exc}")
        self._stop.request(what, message=f"the job stopped ({what}) before this row finished")
        self._stop.hurry()

    # -- the pipeline ----------------------------------------------------------------------------

    async def run(self) -> Summary:
        started = time.monotonic()
        self._stop.begin()
        writer = asyncio.create_task(self._write(), name="writer")
        writer.add_done_callback(self._writer_ended)
        resizer = None
        if self._relabeler:
            self._keep = self._sizer.target if self._sizer else self._concurrency
            self._add_senders(self._keep)
            if self._sizer:
                resizer = asyncio.create_task(self._resize(), name="resizer")
        self._reader = asyncio.create_task(self._read(), name="reader")
        try:
            try:
                await self._reader
            except asyncio.CancelledError:
                if not self._stopping.is_set():
                    raise
            except Exception as exc:
                self._fail(exc, "cannot read the input")
            await self._put_job(None)  # the end: each sender passes it on to the next
            while self._senders:  # senders added meanwhile too
                await asyncio.gather(*self._senders, return_exceptions=True)
            self._drain_jobs()
        finally:
            if resizer:
                resizer.cancel()
            self._stop.settle()
            self._results.put_nowait(None)
            self._end_gathering()
            await writer
            if self._progress:
                self._progress.close()
        self.summary.elapsed = time.monotonic() - started
        self.summary.stopped = self._stop.reason
        if self._relabeler:
            counters = self._relabeler.counters
            self.summary.requests = counters.requests
            self.summary.achieved_rate = counters.achieved_rate
            self.summary.busiest_second = counters.busiest_second
            self.summary.retries = counters.retries
            self.summary.throttled = counters.throttled
        return self.summary

    async def _put_job(self, job: Job | None) -> None:
        # After a hard stop no sender takes from the queue: never block on it.
        while True:
            try:
                # With --concurrency auto, two jobs a sender wait, as with a fixed number: a
                # queue consumer must not take from the stream what other replicas could send.
                if self._sizer is not None and self._jobs.qsize() >= 2 * self._sizer.target:
                    raise asyncio.QueueFull
                self._jobs.put_nowait(job)
                return
            except asyncio.QueueFull:
                if job is not None and self._stopping.is_set():
                    # Record it now: the senders may be busy until the grace runs out.
                    self._emit(self._stopped_result(job))
                    return
                if all(t.done() for t in self._senders):
                    return
                # Woken by the next sender that takes a job or ends, or by the stop (polling
                # every 10 ms was 100 wake-ups a second of a paced job: half a row's at 200/s).
                self._job_taken.clear()
                await self._job_taken.wait()

    def _emit(self, result: Result) -> int:
        """Queue the result for the writer; returns its sequence number."""
        self._results.put_nowait(result)
        if self._results.qsize() >= RESULTS_HIGH_WATER:
            self._room.clear()
        self._emitted += 1
        if self._gathering is not None and (self._results.qsize() >= GROUP_ENOUGH
                                            or self._recording >= self._active):
            self._end_gathering()
        return self._emitted - 1

    def _end_gathering(self) -> None:
        if self._gathering is not None and not self._gathering.done():
            self._gathering.set_result(None)

    def _writer_ended(self, _: asyncio.Task[None]) -> None:
        """However the writer ended (a bug included), no sender may wait for it any longer."""
        self._written = sys.maxsize
        self._batch_written.set()

    async def _record(self, result: Result) -> None:
        """Queue the result and wait until the writer has written it."""
        self._recording += 1
        try:
            seq = self._emit(result)
            while self._written <= seq:
                await self._batch_written.wait()
        finally:
            self._recording -= 1

    async def _read(self) -> None:
        validator = self._validator
        async for batch in self._batches():
            await self._room.wait()
            for item in batch:
                if isinstance(item, Result):  # decided by the source (a queue's dead letter)
                    self._emit(item)
                elif isinstance(item, Rejection):
                    self._emit(from_rejection(item, validator.rules.default_project_id))
                elif isinstance(item, RawRow) or self._stopping.is_set():
                    self._emit(self._stopped_result(item))  # rows are left unvalidated once stopping
                elif self._relabeler is None:
                    self._emit(from_job(item, Outcome.DRY_RUN))
                else:
                    if self._gate is not None:
                        await self._gate(item)
                    if self._stopping.is_set():
                        self._emit(self._stopped_result(item))
                    else:
                        await self._put_job(item)

    def _next_batch(self, rows: Iterator[RawRow | Rejection], validate: bool) -> list[Item]:
        """Up to BATCH rows of a file source, validated (run in a thread)."""
        batch: list[Item] = []
        skip, summary = self._skip, self.summary
        for row in rows:
            item = self._validator.validate(row) if isinstance(row, RawRow) and validate else row
            if skip is not None and item.line in skip:
                summary.skipped += 1
                continue
            batch.append(item)
            if len(batch) >= BATCH:
                break
        return batch

    async def _batches(self) -> AsyncIterator[list[Item]]:
        """Batches from a file source (read and validated in a thread), or one item at a time
        from an async source (a queue, which hands over what it has read)."""
        rows = self._rows
        if isinstance(rows, AsyncIterator):
            async for item in rows:
                if isinstance(item, RawRow) and not self._stopping.is_set():
                    item = self._validator.validate(item)
                yield [item]
            return
        while batch := await asyncio.to_thread(self._next_batch, rows, not self._stopping.is_set()):
            yield batch

    def _add_senders(self, count: int) -> None:
        for _ in range(count):
            self._active += 1  # counted from now, so two answers in a row do not both add
            sender = asyncio.create_task(self._send(), name="sender")
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
            sender.add_done_callback(lambda _: self._job_taken.set())
        self.summary.concurrency = max(self.summary.concurrency, self._active)

    async def _resize(self) -> None:
        """--concurrency auto: enough senders ready to send, checked every RESIZE_EVERY seconds;
        added at once, retired slowly (concurrency.SHRINK_AFTER). Senders waiting out a retry's
        backoff send nothing, so they do not count: when every sender is backing off after a
        burst of 429s, new ones keep the others' rows moving."""
        assert self._sizer is not None and self._relabeler is not None
        counters = self._relabeler.counters
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            self._keep = self._sizer.keep(loop.time())
            ready = self._active - counters.backing_off
            if ready < self._sizer.target:
                self._add_senders(self._sizer.target - ready)
            await asyncio.sleep(RESIZE_EVERY)

    async def _send(self) -> None:
        try:
            await self._send_jobs()
        finally:
            self._active -= 1

    async def _send_jobs(self) -> None:
        assert self._relabeler is not None
        relabeler = self._relabeler
        sizer = self._sizer
        counters = relabeler.counters
        while True:
            # Senders waiting out a retry's backoff send nothing: they do not count.
            if sizer is not None and self._active - counters.backing_off > self._keep:
                return  # fewer have been enough for a while
            job = await self._jobs.get()
            self._job_taken.set()
            if job is None:
                self._jobs.put_nowait(None)
                return
            if self._stopping.is_set():
                self._emit(self._stopped_result(job))
                continue
            try:
                result = await self._apply(job, relabeler)
            except asyncio.CancelledError:
                self._emit(self._stopped_result(job, "stopped while its request was in flight"))
                return
            except Exception as exc:
                self._emit(from_job(job, Outcome.FAILED, error_code="internal_error",
                                    error_message=f"{type(exc).__name__}: {exc}"))
                self._fail(exc, "internal error")
                return
            if result.outcome is Outcome.INTERRUPTED and not result.attempts:
                result = self._stopped_result(job)  # never sent: the stop's outcome and reason
            recording = time.monotonic()
            await self._record(result)
            if sizer is not None and result.latency_ms is not None:
                # A sender is busy for the request and for the wait until its row is durable
                # (fsync): Little's law needs both, or a paced job falls short of its rate.
                sizer.observe(result.latency_ms / 1000 + time.monotonic() - recording,
                              applied=result.outcome is Outcome.APPLIED)

    async def _apply(self, job: Job, relabeler: Relabeler) -> Result:
        if self._live is not None:
            result = await self._live.check(job)
            if result is not None:
                return result
            if self._stopping.is_set():
                return self._stopped_result(job)
        return await relabeler.apply(job)

    def _drain_jobs(self) -> None:
        while not self._jobs.empty():
            job = self._jobs.get_nowait()
            if job is not None:
                self._emit(self._stopped_result(job))

    def _stopped_result(self, item: Job | RawRow, message: str | None = None) -> Result:
        if isinstance(item, RawRow):
            item = _unvalidated_job(item, self._validator)
        stop = self._stop
        return from_job(item, stop.outcome, error_message=message or stop.message)

    async def _write(self) -> None:
        # A thread of its own for sync(): a slow disk must not stall the loop, and the shared
        # pool of to_thread woke two idle workers a batch, each taking the GIL (strace).
        syncer = ThreadPoolExecutor(1, thread_name_prefix="sync")
        try:
            await self._write_batches(syncer)
        finally:
            syncer.shutdown(wait=False)

    async def _write_batches(self, syncer: ThreadPoolExecutor) -> None:
        # Bound once: the lazy logger binds anew on every call (docs/design.md#log-events).
        self._job_log = log.bind()
        loop = asyncio.get_running_loop()
        counts = self.summary.counts
        progress = self._progress
        sinks_broken = False
        while True:
            taken = [await self._results.get()]
            if taken[0] is not None and self._relabeler is not None:
                await self._gather()
            while not self._results.empty() and len(taken) < 1024:
                taken.append(self._results.get_nowait())
            batch = [r for r in taken if r is not None]
            done = len(batch) < len(taken)  # None: the end
            if batch and not sinks_broken:
                try:
                    for sink in self._sinks:
                        written = sink.write_batch(batch)
                        if inspect.isawaitable(written):
                            await written
                        if (sync := getattr(sink, "sync", None)) is not None:
                            await loop.run_in_executor(syncer, sync)
                except Exception as exc:
                    sinks_broken = True
                    self._fail(exc, "cannot record results")
                else:
                    with held_lines():  # one flush of the log for the batch
                        for result in batch:
                            counts[result.outcome] += 1
                            self._log(result)
                            if self._on_result is not None:
                                self._on_result(result)
                    if progress:
                        progress.advance(counts, len(batch))
            self._written += len(batch)
            written_event, self._batch_written = self._batch_written, asyncio.Event()
            written_event.set()
            if self._results.qsize() < RESULTS_HIGH_WATER // 2:
                self._room.set()
            if done:
                return

    async def _gather(self) -> None:
        """Group commit: wait a little for the rows finishing right after this one (a paced job
        finishes one every few ms), unless enough are here, nothing more can come, or the job
        is stopping."""
        if (self._results.qsize() + 1 >= GROUP_ENOUGH or self._recording >= self._active
                or self._stopping.is_set()):
            return
        loop = asyncio.get_running_loop()
        self._gathering = loop.create_future()
        timer = loop.call_later(GROUP_WINDOW, self._end_gathering)
        try:
            await self._gathering
        finally:
            timer.cancel()
            self._gathering = None

    def _log(self, result: Result) -> None:
        if result.error_message == self._stop.message and self._stopping.is_set():
            return  # never sent because of the stop: the summary counts them, not a line each
        if result.outcome.success:
            if not self._log_successes:
                return
            emit = self._job_log.info
        else:
            emit = self._job_log.warning
        emit(
            "job", line=result.line, snapshot_id=result.snapshot_id, outcome=str(result.outcome),
            http_status=result.http_status, error_code=result.error_code,
            error=result.error_message, attempts=result.attempts, latency_ms=result.latency_ms,
            request_id=result.request_id,
        )


def _unvalidated_job(row: RawRow, validator: Validator) -> Job:
    """A row read after the stop, recorded as it is: resume validates it when it runs it."""
    fields = row.fields

    def text(key: str) -> str | None:
        value = fields.get(key)
        return value if isinstance(value, str) else None

    return Job(
        line=row.line,
        snapshot_id=text("snapshot_id") or "",
        project_id=text("project_id") or validator.rules.default_project_id or "",
        name=text("name") or text("display_name"),
        description=text("description") or text("display_description"),
        previous_name=text("previous_name"),
        previous_description=text("previous_description"),
        ref=row.ref,
        region=text("region"),
    )
