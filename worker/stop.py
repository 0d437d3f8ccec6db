"""One stop per job, handed at construction to everything that can ask for it or must obey it: the
engine, the sender's retry loop, the safety rails, the auth method, the queue consumer and the
signal handlers.

A stop is asked for once (the first reason wins): no new row is started and no new attempt is
made; the requests in flight get `grace` seconds to finish, then they are cancelled ("hurried").
A second signal hurries at once, and then the rows not yet read are not recorded either. Every row
that does not finish is recorded with the stop's outcome and message. A stop asked for before
the job runs (credentials refused while connecting) takes effect when it starts (`begin`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .logs import log
from .results import Outcome


class Stop:
    def __init__(self, grace: float = 0.0) -> None:
        self.grace = grace
        self.requested = asyncio.Event()  # set: start nothing new
        self.reason: str | None = None
        self.outcome = Outcome.INTERRUPTED
        self.message = ""
        self.hurried = False
        self._on_hurry: list[Callable[[bool], None]] = []
        self._on_request: list[Callable[[], None]] = []
        self._grace_timer: asyncio.TimerHandle | None = None
        self._running = False

    @property
    def is_set(self) -> bool:
        return self.requested.is_set()

    def on_hurry(self, cancel: Callable[[bool], None]) -> None:
        """`cancel(reader_too)` runs each time the stop is hurried (the grace ran out: False; a
        second signal or a fatal error: True)."""
        self._on_hurry.append(cancel)

    def on_request(self, wake: Callable[[], None]) -> None:
        """`wake()` runs once when the stop is asked for (the engine's reader, waiting for room
        in the queue, then records its rows as stopped)."""
        self._on_request.append(wake)

    def request(self, reason: str, outcome: Outcome = Outcome.INTERRUPTED, message: str = "") -> None:
        """Stop gracefully; a stop already under way keeps its reason (see `signal` to escalate)."""
        if self.is_set:
            return
        self.reason = reason
        self.outcome = outcome
        self.message = message or f"the job stopped ({reason}) before this row finished"
        self.requested.set()
        self._requested()
        if self._running:
            self._start_grace()

    def _requested(self) -> None:
        for wake in self._on_request:
            wake()

    def begin(self) -> None:
        """The job runs from now on (the engine calls it)."""
        self._running = True
        if self.is_set:
            self._start_grace()

    def _start_grace(self) -> None:
        log.warning("stopping", reason=self.reason, grace_s=self.grace)
        # The grace is for requests in flight; the rows not yet read are recorded however long
        # that takes (local work, no request), unless a second stop says "at once".
        self._grace_timer = asyncio.get_running_loop().call_later(self.grace, self.hurry, False)

    def signal(self, name: str) -> None:
        """A signal: the first stops gracefully, the next one at once."""
        if self.is_set:
            self.hurry()
        else:
            self.request(name)

    def hurry(self, reader_too: bool = True) -> None:
        """Cancel what is in flight now."""
        if not self.is_set:
            self.reason = self.reason or "stopped"
            self.message = self.message or "the job stopped before this row finished"
            self.requested.set()
            self._requested()
        self.hurried = True
        log.warning("stopping now: cancelling requests in flight")
        for cancel in self._on_hurry:
            cancel(reader_too)

    def settle(self) -> None:
        """The job is over: a grace period still running has nothing left to cut short."""
        self._running = False
        if self._grace_timer is not None:
            self._grace_timer.cancel()
