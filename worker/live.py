"""The live state behind --skip-unchanged: each project's snapshots, listed once (limit/marker
pages under the job's rate limit, transient errors retried), then consulted before every PUT.

A row is not sent when its snapshot is missing (`failed`), backup-owned (`rejected`, unless
--allow-autobk-prefix) or already at its target (`unchanged`); otherwise the listed values become
the row's previous values, for undo.

The listing is packed, because a project may hold a million snapshots (about 40 bytes plus the
two texts a snapshot): docs/design.md#live-listing.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time
from array import array
from dataclasses import dataclass
from typing import Any

from .api.client import ListingError, SnapshotApi
from .backup import BACKUP_METADATA_KEY, is_backup_owned
from .jobs import Job
from .listing import ListingStopped, list_snapshots
from .logs import log
from .results import Outcome, Result, from_job
from .retry import Retrier
from .routing import RouteError, Router

_HEADER = struct.Struct("<BII")  # flags, name length, description length
_NAME_NONE, _DESCRIPTION_NONE, _BACKUP_OWNED = 1, 2, 4


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    name: str | None
    description: str | None
    backup_owned: bool


def _key(snapshot_id: str) -> bytes:
    """16 bytes: the UUID itself, or a digest of an id that is not one."""
    try:
        key = bytes.fromhex(snapshot_id.replace("-", ""))
    except ValueError:
        key = b""
    return key if len(key) == 16 else hashlib.blake2b(snapshot_id.encode(), digest_size=16).digest()


def _utf8(text: str | None) -> bytes:
    return text.encode("utf-8", "surrogatepass") if text is not None else b""


class SnapshotTable:
    """id -> LiveSnapshot for one project, packed (see the module's docstring)."""

    def __init__(self) -> None:
        self._ids = bytearray()
        self._offsets = array("I")
        self._values = bytearray()
        self._slots = array("I", [0])  # open addressing, linear probing; index + 1, 0 = empty
        self._used = 0

    def __len__(self) -> int:
        return self._used

    @property
    def nbytes(self) -> int:
        return (len(self._ids) + len(self._values) + self._offsets.itemsize * len(self._offsets)
                + self._slots.itemsize * len(self._slots))

    def add(self, snapshot: dict[str, Any]) -> None:
        sid = snapshot.get("id")
        if not isinstance(sid, str):
            return
        name, description = snapshot.get("name"), snapshot.get("description")
        name = name if isinstance(name, str) else None
        description = description if isinstance(description, str) else None
        flags = ((_NAME_NONE if name is None else 0) | (_DESCRIPTION_NONE if description is None else 0)
                 | (_BACKUP_OWNED if is_backup_owned(snapshot) else 0))
        name_bytes, description_bytes = _utf8(name), _utf8(description)
        key = _key(sid)
        slot = self._find(key)
        index = self._slots[slot] - 1
        if index < 0:  # a new id; a repeated one (pages shifted while listing) is updated
            index = len(self._offsets)
            self._ids += key
            self._offsets.append(0)
            self._slots[slot] = index + 1
            self._used += 1
        self._offsets[index] = len(self._values)
        self._values += _HEADER.pack(flags, len(name_bytes), len(description_bytes))
        self._values += name_bytes + description_bytes
        if 2 * self._used > len(self._slots):
            self._grow()

    def get(self, snapshot_id: str) -> LiveSnapshot | None:
        index = self._slots[self._find(_key(snapshot_id))] - 1
        if index < 0:
            return None
        start = self._offsets[index]
        flags, name_len, description_len = _HEADER.unpack_from(self._values, start)
        start += _HEADER.size
        name = bytes(self._values[start:start + name_len]).decode("utf-8", "surrogatepass")
        start += name_len
        description = bytes(self._values[start:start + description_len]).decode("utf-8", "surrogatepass")
        return LiveSnapshot(
            None if flags & _NAME_NONE else name,
            None if flags & _DESCRIPTION_NONE else description,
            bool(flags & _BACKUP_OWNED),
        )

    def _find(self, key: bytes) -> int:
        """The slot holding `key`, or the empty slot where it would go."""
        slots, ids = self._slots, self._ids
        mask = len(slots) - 1
        slot = hash(key) & mask
        while True:
            index = slots[slot] - 1
            if index < 0 or ids[16 * index:16 * index + 16] == key:
                return slot
            slot = (slot + 1) & mask

    def _grow(self) -> None:
        self._slots = array("I", [0]) * (2 * len(self._slots))
        for index in range(len(self._offsets)):
            key = bytes(self._ids[16 * index:16 * index + 16])
            self._slots[self._find(key)] = index + 1


class LiveState:
    """Each (project, region) pair's table, listed the first time a row needs it and shared by all
    senders; with a router, listed at the pair's endpoint with the pair's credentials."""

    def __init__(self, api: SnapshotApi | None, retrier: Retrier, allow_autobk_prefix: bool = False,
                 router: Router | None = None) -> None:
        self.api = api
        self.retrier = retrier
        self.allow_autobk_prefix = allow_autobk_prefix
        self.router = router
        self._tables: dict[tuple[str, str | None], asyncio.Task[SnapshotTable]] = {}

    async def table(self, project_id: str, region: str | None = None) -> SnapshotTable:
        """Raises ListingError when the listing fails for good, RouteError when the pair cannot
        be used."""
        if self.router is not None:
            region = self.router.pair(project_id, region).region  # a row naming the job's region
        task = self._tables.get((project_id, region))
        if task is None:
            task = asyncio.create_task(self._list(project_id, region), name=f"list-{project_id}")
            self._tables[project_id, region] = task
        return await asyncio.shield(task)  # a cancelled sender must not cancel the listing

    def close(self) -> None:
        for task in self._tables.values():
            task.cancel()

    async def check(self, job: Job) -> Result | None:
        """The row's result when it must not be sent; else None, with its previous values set
        from the listing. None too when the job stopped while listing: the engine records that."""
        try:
            table = await self.table(job.project_id, job.region)
        except ListingStopped:
            return None
        except RouteError as exc:
            return _not_sent(job, Outcome.FAILED, exc.code, f"not sent: {exc}")
        except ListingError as exc:
            return _not_sent(job, Outcome.FAILED, "listing_failed",
                             f"cannot check the live state ({exc}): not sent")
        live = table.get(job.snapshot_id)
        if live is None:
            return _not_sent(job, Outcome.FAILED, "not_found",
                             f"no snapshot {job.snapshot_id} in project {job.project_id} "
                             "(live listing at start): not sent")
        job.previous_name, job.previous_description = live.name, live.description
        if live.backup_owned and not self.allow_autobk_prefix:
            return _not_sent(job, Outcome.REJECTED, "backup_owned",
                             "the snapshot belongs to a backup (autobk_snapshot_ name or "
                             f"{BACKUP_METADATA_KEY} metadata): not sent; pass "
                             "--allow-autobk-prefix to change it")
        if ((job.name is None or job.name == live.name)
                and (job.description is None or job.description == live.description)):
            return from_job(job, Outcome.UNCHANGED)
        return None

    async def _list(self, project_id: str, region: str | None) -> SnapshotTable:
        started = time.monotonic()
        table = SnapshotTable()
        api, retrier = self.api, self.retrier
        if self.router is not None:
            route = await self.router.route(project_id, region)
            api, retrier = route.api, retrier.for_auth(route.auth)
        assert api is not None  # without a router, the one API
        async for snapshot in list_snapshots(api, retrier, project_id):
            table.add(snapshot)
        log.info("listed", project_id=project_id, snapshots=len(table),
                 memory_bytes=table.nbytes, elapsed_s=round(time.monotonic() - started, 3))
        return table


def _not_sent(job: Job, outcome: Outcome, code: str, message: str) -> Result:
    return from_job(job, outcome, error_code=code, error_message=message)
