"""The pipeline of one job, bounded everywhere so memory stays flat on a million rows:

    rows ──► validate ──► bounded queue ──► N senders ──► results ──► one writer ──► sinks
             (rejects go straight to results)

Every input row ends as exactly one result. The writer drains results in batches, hands each
batch to the sinks (report, then whatever must wait for durability, such as queue acks), and only
then counts the rows as done.

Stopping: `stop()` stops taking rows, lets the requests in flight finish within a grace period and
records every row that did not finish with the stop's outcome (`interrupted`), including the rows
not yet read. `stop_now()` (a second signal, or the grace running out) cancels what is in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from . import concurrency as auto
from .concurrency import ConcurrencySizer
from .jobs import Job, RawRow, Rejection, Validator
from .logs import log
from .progress import Progress
from .relabel import Relabeler
from .results import Outcome, Result, from_job, from_rejection

BATCH = 256  # rows read and validated per hop to the reader thread
RESULTS_HIGH_WATER = 4096  # the reader waits while this many results await the writer
RESIZE_EVERY = 0.05  # seconds between checks of the number of senders (--concurrency auto)


class Sink(Protocol):
    def write_batch(self, results: list[Result]) -> None:
        """Called by the single writer task, in order. Raising stops the job."""


@dataclass
class Summary:
    counts: Counter[Outcome] = field(default_factory=Counter)
    elapsed: float = 0.0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    concurrency: int = 0  # the most senders at once (what --concurrency auto chose)
    stopped: str | None = None  # why the job stopped early, if it did

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else 0.0

    def as_fields(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            **{str(outcome): self.counts[outcome] for outcome in Outcome if self.counts[outcome]},
            "requests": self.requests,
            "retries": self.retries,
            "throttled": self.throttled,
            **({"concurrency": self.concurrency} if self.concurrency else {}),
            "elapsed_s": round(self.elapsed, 3),
            "requests_per_s": round(self.requests_per_s, 2),
            **({"stopped": self.stopped} if self.stopped else {}),
        }


class Engine:
    def __init__(
        self,
        rows: Iterator[RawRow | Rejection],
        validator: Validator,
        relabeler: Relabeler | None,
        sinks: list[Sink],
        concurrency: int = 16,
        progress: Progress | None = None,
        log_successes: bool = True,
        sizer: ConcurrencySizer | None = None,
    ) -> None:
        """`relabeler` None means a dry run: valid rows are reported, nothing is sent. With a
        `sizer`, the number of senders follows it (`--concurrency auto`) instead of being
        `concurrency`."""
        self._rows = rows
        self._validator = validator
        self._relabeler = relabeler
        self._sinks = sinks
        self._concurrency = max(1, concurrency)
        self._progress = progress
        self._log_successes = log_successes
        self._sizer = sizer
        self._active = 0  # senders running
        most = auto.MAX if sizer else self._concurrency
        self._jobs: asyncio.Queue[Job | None] = asyncio.Queue(maxsize=2 * most)
        self._results: asyncio.Queue[Result | None] = asyncio.Queue()
        self._room = asyncio.Event()  # set while the results queue is below its high water
        self._room.set()
        self._stopping = relabeler.stopping if relabeler else asyncio.Event()
        self._stop_outcome = Outcome.INTERRUPTED
        self._stop_message = ""
        self._senders: list[asyncio.Task[None]] = []
        self._reader: asyncio.Task[None] | None = None
        self._grace_timer: asyncio.TimerHandle | None = None
        self.summary = Summary()
        self.fatal: Exception | None = None  # a sink failed (disk full): the job cannot go on

    # -- control -------------------------------------------------------------------------------

    def stop(self, reason: str, grace: float, outcome: Outcome = Outcome.INTERRUPTED,
             message: str = "") -> None:
        if self._stopping.is_set():
            self.stop_now()
            return
        self.summary.stopped = reason
        self._stop_outcome = outcome
        self._stop_message = message or f"the job stopped ({reason}) before this row finished"
        self._stopping.set()
        log.warning("stopping", reason=reason, grace_s=grace)
        self._grace_timer = asyncio.get_running_loop().call_later(grace, self.stop_now)

    def stop_now(self) -> None:
        if not self._stopping.is_set():
            self._stopping.set()
            self.summary.stopped = self.summary.stopped or "stopped"
        log.warning("stopping now: cancelling requests in flight")
        for task in (*self._senders, *([self._reader] if self._reader else [])):
            task.cancel()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- the pipeline ----------------------------------------------------------------------------

    async def run(self) -> Summary:
        started = time.monotonic()
        writer = asyncio.create_task(self._write(), name="writer")
        resizer = None
        if self._relabeler:
            self._add_senders(self._sizer.target if self._sizer else self._concurrency)
            if self._sizer:
                resizer = asyncio.create_task(self._resize(), name="resizer")
        self._reader = asyncio.create_task(self._read(), name="reader")
        try:
            try:
                await self._reader
            except asyncio.CancelledError:
                if not self._stopping.is_set():
                    raise
            await self._put_job(None)  # the end: each sender passes it on to the next
            while not all(task.done() for task in self._senders):  # senders added meanwhile too
                await asyncio.gather(*self._senders, return_exceptions=True)
            self._drain_jobs()
        finally:
            if resizer:
                resizer.cancel()
            if self._grace_timer:
                self._grace_timer.cancel()
            self._results.put_nowait(None)
            await writer
            if self._progress:
                self._progress.close()
        self.summary.elapsed = time.monotonic() - started
        if self._relabeler:
            counters = self._relabeler.counters
            self.summary.requests = counters.requests
            self.summary.retries = counters.retries
            self.summary.throttled = counters.throttled
        return self.summary

    async def _put_job(self, job: Job | None) -> None:
        # After a hard stop no sender takes from the queue: never block on it.
        while True:
            try:
                self._jobs.put_nowait(job)
                return
            except asyncio.QueueFull:
                if all(t.done() for t in self._senders):
                    return
                await asyncio.sleep(0.01)

    def _emit(self, result: Result) -> None:
        self._results.put_nowait(result)
        if self._results.qsize() >= RESULTS_HIGH_WATER:
            self._room.clear()

    async def _read(self) -> None:
        rows = self._rows
        validator = self._validator

        def next_batch(validate: bool) -> list[Job | Rejection | RawRow]:
            batch: list[Job | Rejection | RawRow] = []
            for item in rows:
                if isinstance(item, RawRow) and validate:
                    batch.append(validator.validate(item))
                else:
                    batch.append(item)
                if len(batch) >= BATCH:
                    break
            return batch

        while batch := await asyncio.to_thread(next_batch, not self._stopping.is_set()):
            await self._room.wait()
            for item in batch:
                if isinstance(item, Rejection):
                    self._emit(from_rejection(item, validator.rules.default_project_id))
                elif self._stopping.is_set():
                    self._emit(self._stopped_result(item))
                elif self._relabeler is None:
                    self._emit(from_job(item, Outcome.DRY_RUN))  # type: ignore[arg-type]
                else:
                    await self._put_job(item)  # type: ignore[arg-type]

    def _add_senders(self, count: int) -> None:
        for _ in range(count):
            self._active += 1  # counted from now, so two answers in a row do not both add
            self._senders.append(
                asyncio.create_task(self._send(), name=f"sender-{len(self._senders)}"))
        self.summary.concurrency = max(self.summary.concurrency, self._active)

    async def _resize(self) -> None:
        """--concurrency auto: enough senders ready to send, checked every RESIZE_EVERY seconds.
        Senders waiting out a retry's backoff send nothing, so they do not count: when every
        sender is backing off after a burst of 429s, new ones keep the others' rows moving."""
        assert self._sizer is not None and self._relabeler is not None
        counters = self._relabeler.counters
        while True:
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
            if sizer is not None and self._active - counters.backing_off > sizer.target * 1.25:
                return  # fewer are enough now (a quarter of slack, so the count does not churn)
            job = await self._jobs.get()
            if job is None:
                self._jobs.put_nowait(None)
                return
            if self._stopping.is_set():
                self._emit(self._stopped_result(job))
                continue
            try:
                result = await relabeler.apply(job)
            except asyncio.CancelledError:
                self._emit(self._stopped_result(job, "stopped while its request was in flight"))
                return
            self._emit(result)
            if sizer is not None and result.latency_ms is not None:
                sizer.observe(result.latency_ms / 1000)

    def _drain_jobs(self) -> None:
        while not self._jobs.empty():
            job = self._jobs.get_nowait()
            if job is not None:
                self._emit(self._stopped_result(job))

    def _stopped_result(self, item: Job | RawRow, message: str | None = None) -> Result:
        if isinstance(item, RawRow):
            item = _unvalidated_job(item, self._validator)
        return from_job(item, self._stop_outcome, error_message=message or self._stop_message)

    async def _write(self) -> None:
        # Bound once: the module's lazy logger binds anew on every call, half the cost of a job
        # event (bench/RESULTS.md).
        self._job_log = log.bind()
        counts = self.summary.counts
        progress = self._progress
        while True:
            batch = [await self._results.get()]
            while not self._results.empty() and len(batch) < 1024:
                batch.append(self._results.get_nowait())
            done = None in batch
            if done:
                batch = [r for r in batch if r is not None]
            if batch and self.fatal is None:
                try:
                    for sink in self._sinks:
                        sink.write_batch(batch)
                except Exception as exc:  # noqa: BLE001 - any sink failure ends the job
                    self.fatal = exc
                    log.error("cannot record results: stopping", error=str(exc))
                    self.stop_now()
                else:
                    for result in batch:
                        counts[result.outcome] += 1
                        self._log(result)
                    if progress:
                        progress.advance(counts, len(batch))
            if self._results.qsize() < RESULTS_HIGH_WATER // 2:
                self._room.set()
            if done:
                return

    def _log(self, result: Result) -> None:
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
    )
