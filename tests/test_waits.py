"""Cancellations are not lost (worker/waits.py). On Python 3.11 `asyncio.wait_for` loses one that
arrives as what it waits for completes, and redis-py waits with it: a queue replica's rate
learner cancelled at shutdown ran on (tests/test_queue_shared_auto.py hung one run in three)."""

from __future__ import annotations

import asyncio

import pytest

from worker.waits import honour_lost_cancellation, set_within


async def test_a_cancellation_that_comes_as_the_event_is_set_is_not_lost():
    event = asyncio.Event()
    loops = 0

    async def waiter() -> None:
        nonlocal loops
        while loops < 3:  # a loop like the learner's: wait, work, wait again
            await set_within(event, 10)
            event.clear()
            loops += 1

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0.01)
    event.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
    assert loops == 0


async def test_it_says_whether_the_event_was_set_in_time():
    event = asyncio.Event()
    assert await set_within(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await set_within(event, 5) is True
    assert await set_within(event, 0) is True  # already set: at once


async def test_a_loop_stops_at_its_head_when_a_cancellation_was_swallowed_inside_it():
    async def swallowing() -> None:  # as a library's wait_for does on Python 3.11
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return

    rounds = 0

    async def loop() -> None:
        nonlocal rounds
        while True:
            honour_lost_cancellation()
            rounds += 1
            await swallowing()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
    assert rounds == 1
