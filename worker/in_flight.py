"""A bound on requests in flight that can change from one moment to the next (`--rate auto`'s
ramp: worker/rate.py). Waiters are let in first come, first served, one wake-up per place freed
(a herd woken at every answer would cost the CPU the bound is there to save)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable


class InFlightGate:
    """At most `limit()` holders at once (None: no bound). A holder enters before its request
    and leaves when its answer is in."""

    def __init__(self, limit: Callable[[], int | None]) -> None:
        self._limit = limit
        self.holding = 0
        self._turns: deque[asyncio.Future[None]] = deque()

    def _room(self) -> bool:
        limit = self._limit()
        return limit is None or self.holding < limit

    async def enter(self) -> None:
        if not self._turns and self._room():
            self.holding += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._turns.append(turn)
        try:
            await turn  # let_in took the place for us
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self.leave()  # let in as it was cancelled: the place goes to the next
            raise

    def leave(self) -> None:
        self.holding = max(0, self.holding - 1)  # an answer without an entry (a shared schedule's)
        self.let_in()

    def let_in(self) -> None:
        """As many waiters as there is room for now (all of them once there is no bound)."""
        while self._turns and self._room():
            turn = self._turns.popleft()
            if not turn.done():  # a cancelled waiter left the queue
                self.holding += 1
                turn.set_result(None)
