"""The bound on requests in flight during `--rate auto`'s ramp (worker/in_flight.py, and its use
in worker/rate.py): requests beyond what unqueued answers need wait in the process, where the
first 429 stops them, rather than on the wire, where a full quota refuses them all."""

from __future__ import annotations

import asyncio

from worker.api.client import Answer
from worker.in_flight import InFlightGate
from worker.rate import AdaptiveRateLimiter
from worker.retry import Ending, Retrier, RetryPolicy
from worker.stop import Stop


async def test_the_gate_holds_its_bound_as_it_changes_and_lets_everyone_in_once_lifted():
    limit: list[int | None] = [2]
    gate = InFlightGate(lambda: limit[0])
    entered: list[int] = []

    async def holder(i: int) -> None:
        await gate.enter()
        entered.append(i)

    tasks = [asyncio.create_task(holder(i)) for i in range(6)]
    await asyncio.sleep(0)
    assert entered == [0, 1] and gate.holding == 2
    gate.leave()
    await asyncio.sleep(0)
    assert entered == [0, 1, 2]  # one place freed, one let in: first come, first served
    limit[0] = 4
    gate.let_in()
    await asyncio.sleep(0)
    assert entered == [0, 1, 2, 3, 4] and gate.holding == 4
    limit[0] = None
    gate.leave()
    await asyncio.gather(*tasks)
    assert entered == [0, 1, 2, 3, 4, 5]


async def test_a_waiter_cancelled_as_it_is_let_in_gives_its_place_to_the_next():
    gate = InFlightGate(lambda: 1)
    await gate.enter()
    first = asyncio.create_task(gate.enter())
    second = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    gate.leave()  # the place goes to `first`...
    first.cancel()  # ... which is cancelled before it runs
    await asyncio.sleep(0)
    assert first.cancelled()
    await asyncio.wait_for(second, 1)  # and `second` has it: no place lost
    assert gate.holding == 1


class QueueingServer:
    """Answers after 5 ms plus 2 ms for every other request in flight (requests queue: on a busy
    core, in the server, in this process), and refuses every request past `quota` with a 429: a
    window quota that closes for the rest of the test."""

    def __init__(self, quota: int) -> None:
        self.quota = quota
        self.accepted = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.statuses: list[int] = []

    async def answer(self) -> int:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.005 + 0.002 * (self.in_flight - 1))
        finally:
            self.in_flight -= 1
        status = 200 if self.accepted < self.quota else 429
        self.accepted += status == 200
        self.statuses.append(status)
        return status


async def test_the_ramp_keeps_queued_requests_off_the_wire_so_a_full_quota_refuses_few():
    limiter = AdaptiveRateLimiter()
    server = QueueingServer(quota=300)

    async def sender() -> None:
        while True:
            await limiter.acquire()
            limiter.observe(await server.answer(), None)

    senders = [asyncio.create_task(sender()) for _ in range(64)]  # --concurrency auto's most, near
    for _ in range(300):
        await asyncio.sleep(0.1)
        if 429 in server.statuses:
            break
    await asyncio.sleep(0.5)  # the closing's 429s are all in, the trickle's first few too
    for task in senders:
        task.cancel()
    await asyncio.gather(*senders, return_exceptions=True)
    # Unqueued, 5 ms at the few hundred a second the ramp reaches need a few requests in flight.
    # Unbound, the 64 senders had all 64 in flight (each answer then 131 ms late), and 68 429s
    # (the closing's, then the trickle's); bound, 17-18 and 19-20.
    assert server.most_in_flight <= 32
    assert 1 <= server.statuses.count(429) <= 32
    assert server.accepted == 300


async def test_grants_that_send_nothing_give_their_places_in_flight_back():
    """A sender cancelled in flight (the stop's grace ran out), or one that finds the job
    stopping once its slot comes, will have no answer: its place goes to the next request."""
    limiter = AdaptiveRateLimiter()
    stop = Stop()
    retrier = Retrier(RetryPolicy(), limiter, stop)
    assert limiter._ramp_in_flight() is None  # no answer yet: nothing bounds the first requests
    never = asyncio.Event()
    sent = []

    async def hangs() -> Answer:
        sent.append(1)
        await never.wait()
        raise AssertionError("never answered")

    await limiter.acquire()
    limiter.observe(200, None)  # an answer: latency known, the ramp's bound set
    bound = limiter._ramp_in_flight()
    assert bound is not None
    in_flight = [asyncio.create_task(retrier.call(hangs)) for _ in range(bound)]
    while len(sent) < bound:  # every one of them granted, on the wire
        await asyncio.sleep(0.01)
    assert limiter._gate.holding == bound
    for task in in_flight:
        task.cancel()
    await asyncio.gather(*in_flight, return_exceptions=True)
    assert limiter._gate.holding == 0

    stopping = [asyncio.create_task(retrier.call(hangs)) for _ in range(bound + 3)]
    await asyncio.sleep(0)
    stop.request("test")
    tried = await asyncio.wait_for(asyncio.gather(*stopping), 10)
    assert {t.ending for t in tried} == {Ending.STOPPED}
    assert limiter._gate.holding == 0 and limiter._outstanding == 0
