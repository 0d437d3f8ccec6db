"""`snaprelabel queue status`, and the queue figures a consumer exports as metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from .streams import QueueNames


@dataclass
class ConsumerStatus:
    name: str
    pending: int
    idle_s: float


@dataclass
class QueueStatus:
    stream: str
    group: str
    group_exists: bool
    length: int  # entries in the stream: waiting + pending (finished ones are deleted)
    waiting: int  # not yet delivered to any consumer
    pending: int  # delivered, not yet finished
    consumers: list[ConsumerStatus] = field(default_factory=list)
    oldest_age_s: float | None = None  # age of the oldest unfinished job
    results_stream: str = ""
    results: int = 0
    dead_stream: str = ""
    dead: int = 0
    other_groups: list[str] = field(default_factory=list)  # each applies every job once more

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def read_status(client: Redis, names: QueueNames) -> QueueStatus:
    async with client.pipeline(transaction=False) as pipe:
        pipe.xlen(names.stream).xlen(names.results).xlen(names.dead)
        pipe.xrange(names.stream, count=1).time()
        length, results, dead, oldest, (seconds, micros) = await pipe.execute()
    status = QueueStatus(
        names.stream, names.group, group_exists=False, length=length, waiting=length, pending=0,
        results_stream=names.results, results=results, dead_stream=names.dead, dead=dead,
    )
    if oldest:
        queued_ms = int(oldest[0][0].split("-")[0])
        status.oldest_age_s = round(max(0.0, seconds + micros / 1e6 - queued_ms / 1000), 3)
    try:
        groups = await client.xinfo_groups(names.stream)
    except ResponseError:  # no such stream
        return status
    status.other_groups = sorted(g["name"] for g in groups if g["name"] != names.group)
    try:
        consumers = await client.xinfo_consumers(names.stream, names.group)
    except ResponseError:  # no such group
        return status
    status.group_exists = True
    status.consumers = [ConsumerStatus(c["name"], c["pending"], round(c["idle"] / 1000, 1))
                        for c in consumers]
    status.pending = sum(c.pending for c in status.consumers)
    status.waiting = max(0, length - status.pending)
    return status


def render(status: QueueStatus, claim_idle: float | None = None) -> str:
    """`claim_idle`: the consumers' --claim-idle, to say whose pending jobs others may take over."""
    lines = [f"stream {status.stream}: {status.length} jobs ({status.waiting} waiting, "
             f"{status.pending} pending)"]
    if status.oldest_age_s is not None:
        lines.append(f"  oldest unfinished job queued {status.oldest_age_s:.0f} s ago")
    if not status.group_exists:
        lines.append(f"group {status.group}: does not exist yet (no consumer has started)")
    else:
        lines.append(f"group {status.group}: {len(status.consumers)} consumers")
        for c in sorted(status.consumers, key=lambda c: c.name):
            lines.append(f"  {c.name}: {c.pending} pending, idle {c.idle_s:.1f} s{_claimable(c, claim_idle)}")
    if status.other_groups:
        lines.append(f"other groups reading {status.stream}: {', '.join(status.other_groups)} "
                     "(each applies every job once more)")
    lines.append(f"results {status.results_stream}: {status.results} entries")
    lines.append(f"dead letters {status.dead_stream}: {status.dead} entries")
    return "\n".join(lines)


def _claimable(consumer: ConsumerStatus, claim_idle: float | None) -> str:
    """A stopped consumer (SIGTERM, a crash) still holds its pending jobs: say they are not lost."""
    if claim_idle is None or not consumer.pending:
        return ""
    if consumer.idle_s >= claim_idle:
        return f" (claimable now: idle past --claim-idle {claim_idle:g} s, a running consumer takes them over)"
    return f" (if it has stopped, a running consumer takes them over once idle {claim_idle:g} s)"
