"""When to try a job again, and how long to wait: exponential backoff with full jitter, capped
attempts and a per-job deadline; Retry-After wins when the server sends one."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base: float = 0.5  # seconds; attempt n waits up to base * 2**(n-1)
    cap: float = 30.0  # no single wait is longer than this
    deadline: float = 300.0  # seconds from a job's first attempt to its last
    # A 429 without Retry-After: gateways count per second or per minute, so wait seconds, not
    # milliseconds (Huawei advises 2-5 s).
    throttled_min: float = 2.0

    def delay(self, attempt: int, status: int | None, retry_after: float | None,
              rng: random.Random = random._inst) -> float:  # type: ignore[attr-defined]
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.deadline)
        wait = rng.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))
        if status == 429:
            wait = max(wait, rng.uniform(self.throttled_min, 2 * self.throttled_min))
        return wait
