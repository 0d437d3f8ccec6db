"""Waiting for an event, at most so long, without losing a cancellation.

On Python 3.11, `asyncio.wait_for(event.wait(), t)` returns normally when its task is cancelled
in the same turn of the loop as the event is set: the cancellation is lost, and a task told to
stop runs on (a queue replica's rate learner, cancelled at shutdown, kept reading Redis and held
its caller's `gather` for good). `asyncio.timeout` keeps it (3.12's `wait_for` is built on it).
"""

from __future__ import annotations

import asyncio
from contextlib import suppress


async def set_within(event: asyncio.Event, timeout: float) -> bool:
    """Wait up to `timeout` seconds for `event`: True if it is set."""
    with suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
    return event.is_set()


def honour_lost_cancellation() -> None:
    """Raise CancelledError if this task was cancelled and the cancellation was swallowed on the
    way: redis-py's own `wait_for` loses it the same way on Python 3.11, but the task still counts
    it. For the head of a loop that must stop when cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
