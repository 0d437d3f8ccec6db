"""The engine in-process, with a sender whose API is a fake that answers when told: stop, grace,
drain, a second stop, the bound on rows sent but not written, resizing, and failures of its own.
Milliseconds each, no socket: the same code paths the socket tests reach end to end."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest

from helpers import PROJECT
from worker.api.client import Answer
from worker.concurrency import ConcurrencySizer
from worker.engine import Engine
from worker.jobs import JobRules, RawRow, Validator
from worker.logs import configure
from worker.rate import RateLimiter
from worker.relabel import Relabeler
from worker.results import Outcome, Result
from worker.retry import Retrier, RetryPolicy
from worker.stop import Stop


def rows(n: int) -> list[RawRow]:
    return [RawRow(line + 2, {"snapshot_id": f"{line:08x}-0000-4000-8000-000000000000",
                              "name": f"n{line}"}) for line in range(n)]


class FakeApi:
    """Answers each PUT 200 echoing it, once `gate` is set (set from the start unless held)."""

    def __init__(self, hold: bool = False, fail_on: int | None = None) -> None:
        self.gate = asyncio.Event()
        if not hold:
            self.gate.set()
        self.started = 0
        self.in_flight = 0
        self.fail_on = fail_on

    async def update(self, project_id: str, snapshot_id: str, body: dict[str, Any]) -> Answer:
        self.started += 1
        if self.fail_on is not None and self.started == self.fail_on:
            raise RuntimeError("a bug in the sender")
        self.in_flight += 1
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        return Answer(200, payload={"id": snapshot_id, **body["snapshot"]}, latency=0.001)


class Collect:
    def __init__(self, block: asyncio.Event | None = None) -> None:
        self.results: list[Result] = []
        self._block = block

    async def write_batch(self, results: list[Result]) -> None:
        if self._block is not None:
            await self._block.wait()
        self.results.extend(results)


def engine(api: FakeApi, stop: Stop, n: int, sink: Any, concurrency: int = 4,
           sizer: ConcurrencySizer | None = None) -> Engine:
    retrier = Retrier(RetryPolicy(base=0.001), RateLimiter(0), stop)
    return Engine(iter(rows(n)), Validator(JobRules(PROJECT)), Relabeler(api, retrier), [sink],
                  stop, concurrency=concurrency, sizer=sizer)


async def until(condition: Any) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never met")


def outcomes(sink: Collect) -> dict[str, int]:
    counted: dict[str, int] = {}
    for result in sink.results:
        counted[str(result.outcome)] = counted.get(str(result.outcome), 0) + 1
    return counted


async def test_every_row_ends_as_one_result():
    sink = Collect()
    summary = await engine(FakeApi(), Stop(), 50, sink).run()
    assert outcomes(sink) == {"applied": 50} and summary.requests == 50
    assert sorted(r.line for r in sink.results) == [r.line for r in rows(50)]


class WriteThrough(io.StringIO):
    """A log stream as stdout is under PYTHONUNBUFFERED (the image): each write() reaches the pipe."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


class CountBatches(Collect):
    batches = 0

    async def write_batch(self, results: list[Result]) -> None:
        self.batches += 1
        await super().write_batch(results)


async def test_the_job_lines_of_a_batch_reach_the_log_in_one_write_in_report_order():
    out, sink = WriteThrough(), CountBatches()
    configure("info", "json", stream=out)
    await engine(FakeApi(), Stop(), 50, sink).run()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    jobs = [line["line"] for line in lines if line["event"] == "job"]
    assert jobs == [r.line for r in sink.results] and sorted(jobs) == [r.line for r in rows(50)]
    assert out.writes <= sink.batches + len(lines) - len(jobs)  # the other events: one each


async def test_a_stop_lets_requests_in_flight_finish_within_the_grace_and_records_the_rest():
    api, stop, sink = FakeApi(hold=True), Stop(grace=5.0), Collect()
    running = asyncio.create_task(engine(api, stop, 100, sink).run())
    await until(lambda: api.in_flight == 4)
    stop.request("SIGTERM")
    api.gate.set()  # the four in flight answer within the grace
    summary = await running
    assert outcomes(sink) == {"applied": 4, "interrupted": 96} and summary.stopped == "SIGTERM"
    assert len({r.line for r in sink.results}) == 100 and api.started == 4


async def test_when_the_grace_runs_out_requests_in_flight_are_cancelled_and_recorded():
    api, stop, sink = FakeApi(hold=True), Stop(grace=0.01), Collect()
    running = asyncio.create_task(engine(api, stop, 30, sink).run())
    await until(lambda: api.in_flight == 4)
    stop.request("SIGTERM")
    await running
    cut = [r for r in sink.results if r.error_message == "stopped while its request was in flight"]
    assert len(cut) == 4 and outcomes(sink) == {"interrupted": 30} and stop.hurried


async def test_a_second_stop_cancels_at_once_and_leaves_unread_rows_unrecorded():
    api, stop, sink = FakeApi(hold=True), Stop(grace=60.0), Collect()
    running = asyncio.create_task(engine(api, stop, 100_000, sink).run())
    await until(lambda: api.in_flight == 4)
    stop.signal("SIGINT")
    stop.signal("SIGINT")  # the second: at once, the rows not yet read included
    await asyncio.wait_for(running, 10)
    assert stop.hurried and len(sink.results) < 100_000  # not a minute's grace, not every row
    assert {r.outcome for r in sink.results} == {Outcome.INTERRUPTED}


async def test_at_most_concurrency_rows_are_sent_and_not_yet_written():
    # The bound that limits what a kill -9 can make --resume send twice.
    block = asyncio.Event()
    api, stop, sink = FakeApi(), Stop(), Collect(block)
    running = asyncio.create_task(engine(api, stop, 200, sink, concurrency=5).run())
    await until(lambda: api.started >= 5)
    for _ in range(50):
        await asyncio.sleep(0)
    assert api.started - len(sink.results) <= 5 + 1  # +1: the batch the writer holds
    block.set()
    await running
    assert outcomes(sink) == {"applied": 200}


async def test_concurrency_auto_adds_senders_up_to_the_sizers_target():
    sizer = ConcurrencySizer(lambda: 2000.0)  # 2,000/s at 0.1 s: ~300 senders wanted
    api, sink = FakeApi(hold=True), Collect()
    running = asyncio.create_task(engine(api, Stop(), 400, sink, sizer=sizer).run())
    await until(lambda: api.in_flight >= 100)
    api.gate.set()
    summary = await running
    assert summary.concurrency >= 100 and outcomes(sink) == {"applied": 400}


async def test_a_senders_own_failure_is_recorded_and_fatal_never_a_silent_loss():
    api, stop, sink = FakeApi(fail_on=3), Stop(grace=5.0), Collect()
    eng = engine(api, stop, 50, sink)
    await eng.run()
    assert isinstance(eng.fatal, RuntimeError) and stop.hurried
    failed = [r for r in sink.results if r.outcome is Outcome.FAILED]
    assert [r.error_code for r in failed] == ["internal_error"]
    assert "a bug in the sender" in (failed[0].error_message or "")


async def test_a_sink_that_cannot_write_is_fatal():
    class Full:
        def write_batch(self, results: list[Result]) -> None:
            raise OSError(28, "No space left on device")

    eng = engine(FakeApi(), Stop(), 50, Full())
    await eng.run()
    assert isinstance(eng.fatal, OSError) and eng.summary.stopped == "cannot record results"


@pytest.mark.parametrize("n", [0, 1])
async def test_tiny_inputs_finish(n):
    sink = Collect()
    await engine(FakeApi(), Stop(), n, sink).run()
    assert len(sink.results) == n
