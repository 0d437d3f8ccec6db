"""How far the job is: a bar with rate and ETA on a terminal, a progress event every few seconds
in a log pipe (a container)."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from .logs import log
from .results import Outcome


class Progress:
    def __init__(self, total: int | None, on_terminal: bool, interval: float = 5.0) -> None:
        self.total = total
        self.interval = interval
        self.done = 0
        self._started = time.monotonic()
        self._next_event = self._started + interval
        self._bar: Any = None
        if on_terminal:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="row", dynamic_ncols=True, smoothing=0.1)

    def advance(self, counts: Counter[Outcome], n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            problems = counts[Outcome.FAILED] + counts[Outcome.REJECTED]
            if problems:
                self._bar.set_postfix(problems=problems, refresh=False)
            return
        now = time.monotonic()
        if now >= self._next_event:
            self._next_event = now + self.interval
            self.event(counts, now)

    def set_total(self, total: int | None) -> None:
        self.total = total
        if self._bar is not None and total is not None:
            self._bar.total = max(total, self.done)
            self._bar.refresh()

    def event(self, counts: Counter[Outcome], now: float) -> None:
        elapsed = now - self._started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        fields: dict[str, Any] = {"done": self.done, "rows_per_s": round(rate, 1)}
        if self.total:
            fields["total"] = self.total
            if rate > 0:
                fields["eta_s"] = round(max(0, self.total - self.done) / rate)
        log.info("progress", **fields, **{str(k): v for k, v in counts.items()})

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
