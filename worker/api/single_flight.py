"""Single-flight renewal of credentials that expire (KeystoneAuth's tokens, MetadataAuth's
temporary keys): one request to the identity or metadata service at a time, however many senders
wait for it, and renewals started in the background while the current credentials are still good."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

from .auth import AuthError


class Expiring(Protocol):
    @property
    def renew_at(self) -> float: ...  # time.monotonic() from which to renew in the background

    @property
    def stale_at(self) -> float: ...  # ...and from which to stop sending it


T = TypeVar("T", bound=Expiring)


class SingleFlight(Generic[T]):
    """Runs `fetch` for the first caller; the others get the same task while it runs."""

    def __init__(self, fetch: Callable[[], Awaitable[T]]) -> None:
        self._fetch = fetch
        self._pending: asyncio.Task[T] | None = None

    @property
    def running(self) -> bool:
        return self._pending is not None

    def still_good(self, held: T | None, quiet_until: float, failed: Callable[[BaseException], None]) -> T | None:
        """`held` while it is fit to send (before its stale_at), a background renewal started
        once it is due (from its renew_at, not before `quiet_until`); None: none or stale."""
        now = time.monotonic()
        if held is None or now >= held.stale_at:
            return None
        if now >= held.renew_at and now >= quiet_until:
            self.in_background(failed)
        return held

    async def wait(self) -> T:
        """The result of the renewal under way, or of a new one. Shielded: a sender cancelled
        while it waits does not cancel the renewal the others wait for."""
        return await asyncio.shield(self._start())

    def in_background(self, failed: Callable[[BaseException], None]) -> None:
        """Starts a renewal nobody waits for, unless one is under way; `failed(error)` when it
        fails (a cancelled one is not a failure)."""
        if self._pending is not None:
            return

        def done(task: asyncio.Task[T]) -> None:
            if not task.cancelled() and (exc := task.exception()) is not None:
                failed(exc)

        self._start().add_done_callback(done)

    async def close(self) -> None:
        """Cancels the renewal under way: the job is over, nobody needs it."""
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, AuthError):
                await self._pending

    def _start(self) -> asyncio.Task[T]:
        if self._pending is None:
            self._pending = asyncio.get_running_loop().create_task(self._run())
        return self._pending

    async def _run(self) -> T:
        try:
            return await self._fetch()
        finally:
            self._pending = None
