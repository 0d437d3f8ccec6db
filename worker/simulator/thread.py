"""Run a simulator on its own event loop in a daemon thread, for synchronous and subprocess tests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .config import SimulatorConfig
from .server import Simulator

T = TypeVar("T")


class SimulatorThread:
    """Handle on a simulator served from another thread: `.url`, `.sim`, `.call()`, `.stop()`."""

    def __init__(self, sim: Simulator, loop: asyncio.AbstractEventLoop, thread: threading.Thread):
        self.sim = sim
        self.loop = loop
        self.thread = thread
        self.url: str = sim.url or ""

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 10.0) -> T:
        """Run fn(*args) on the simulator's loop thread: a consistent read while it serves."""

        async def _run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(_run(), self.loop).result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if not self.thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)

    def __enter__(self) -> SimulatorThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_in_thread(
    config: SimulatorConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> SimulatorThread:
    """Seed and start a simulator in a daemon thread; returns once it accepts connections.
    A failure to start (port in use, ...) is raised here, in the caller's thread."""
    sim = Simulator(config)  # seeding errors surface in the caller
    loop = asyncio.new_event_loop()
    started: concurrent.futures.Future[str] = concurrent.futures.Future()

    def _main() -> None:
        asyncio.set_event_loop(loop)
        try:
            started.set_result(loop.run_until_complete(sim.start(host, port)))
        except BaseException as exc:  # hand it to the caller, then end the thread
            started.set_exception(exc)
            loop.close()
            return
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(sim.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=_main, name="snaprelabel-simulator", daemon=True)
    thread.start()
    started.result()
    return SimulatorThread(sim, loop, thread)
