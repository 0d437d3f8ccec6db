"""Which request fails and how: the seeded fault draw and the two ways of breaking a connection
(abort, truncated body). Quotas (the 429s of a gateway) are in quota.py."""

from __future__ import annotations

import random
from collections.abc import Sequence

from aiohttp import web

from .config import Fault
from .quota import SlidingWindow as SlidingWindowLimiter  # its original home: tests import it here
from .responses import raw_http

__all__ = ["FaultPicker", "SlidingWindowLimiter", "abort", "dropped", "truncate"]


class FaultPicker:
    """Every request draws once per configured fault, in list order; the first hit wins.

    Drawing for every fault (even after a hit) keeps the n-th request's draws the same whatever
    happened before, so a seed gives the same fault sequence for the same arrival order.
    """

    def __init__(self, seed: int, faults: Sequence[Fault]):
        self.rng = random.Random(f"faults:{seed}")
        self.faults: tuple[Fault, ...] = tuple(faults)

    def draw(self) -> str | None:
        hit = None
        rnd = self.rng.random
        for fault in self.faults:
            if rnd() < fault.fraction and hit is None:
                hit = fault.kind
        return hit


def dropped() -> web.Response:
    """What a handler returns after breaking the connection: aiohttp fails to write it onto the
    closed transport, treats that as a client disconnect and stays quiet."""
    return web.Response(status=599)


def abort(request: web.BaseRequest) -> web.Response:
    """Close the connection with no answer at all (the client sees a disconnect)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return dropped()


def truncate(request: web.BaseRequest, status: int, body: bytes) -> web.Response:
    """Promise the whole body, send half, then close cleanly (FIN, not RST) so the client reads
    the head and part of the body before the stream ends: a payload error, not a reset."""
    transport = request.transport
    if transport is not None:
        transport.write(raw_http(status, body[: len(body) // 2], len(body)))
        transport.close()  # flushes what was written, then closes
    return dropped()
