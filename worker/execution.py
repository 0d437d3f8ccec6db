"""What `run` and `consume` share once their parts are built: the engine run under SIGINT/SIGTERM
(the first stops gracefully, the second at once) and the exit code of how it ended."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from dataclasses import dataclass

from . import exitcodes
from .engine import Engine, Summary
from .safety import ROW_CAP
from .stop import Stop


@dataclass(frozen=True)
class Ran:
    summary: Summary
    signal: int | None  # the first signal received, if any
    fatal: BaseException | None  # why the engine could not go on (see engine.py)

    @property
    def status(self) -> str:
        """The manifest's word for how the job ended."""
        if self.fatal is not None:
            return "failed"
        if self.signal is not None:
            return "interrupted"
        # A --limit stop is a finished job: it did all it was asked to.
        return "stopped" if self.summary.stopped not in (None, ROW_CAP) else "finished"


async def execute(engine: Engine, stop: Stop, on_signal: Callable[[], None] | None = None) -> Ran:
    """`on_signal` runs on each signal, after the stop is asked for (a listing to cancel, a
    Redis wait to shorten)."""
    received: list[int] = []
    loop = asyncio.get_running_loop()

    def handle(signum: int) -> None:
        received.append(signum)
        stop.signal(signal.Signals(signum).name)
        if on_signal is not None:
            on_signal()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, handle, signum)
    try:
        summary = await engine.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return Ran(summary, received[0] if received else None, engine.fatal)


def exit_code(ran: Ran, problems: bool) -> int:
    """`problems`: rows rejected or failed (for a resumed job, in the whole report)."""
    if ran.fatal is not None:
        return exitcodes.FATAL
    if ran.signal is not None:
        return exitcodes.SIGTERM if ran.signal == signal.SIGTERM else exitcodes.SIGINT
    if ran.summary.stopped not in (None, ROW_CAP):  # a safety rail, or credentials refused mid-job
        return exitcodes.STOPPED
    return exitcodes.PROBLEMS if problems else exitcodes.OK
