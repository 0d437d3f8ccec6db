"""The snapshot store: lookup, update and paged listing in a stable order."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from .seeding import fmt_time

# The fields the seed's response lists, in its order; project_id stays internal.
PUBLIC_FIELDS = (
    "id",
    "status",
    "name",
    "description",
    "created_at",
    "updated_at",
    "metadata",
    "volume_id",
    "size",
)
FILTERS = ("name", "status", "volume_id")


class MarkerNotFound(LookupError):
    pass


def public_view(snap: dict[str, Any]) -> dict[str, Any]:
    return {k: snap[k] for k in PUBLIC_FIELDS}


class SnapshotStore:
    """Snapshots by id. Updates replace the dict (copy on write), so a reader in another thread
    never sees a half-applied change and the key set never changes while iterating."""

    def __init__(self, snapshots: Iterable[dict[str, Any]]):
        ordered = sorted(snapshots, key=lambda s: (s["created_at"], s["id"]))
        self.data: dict[str, dict[str, Any]] = {s["id"]: s for s in ordered}
        # created_at never changes, so the per-project order is computed once.
        self._order: dict[str, list[str]] = {}
        self._pos: dict[str, int] = {}
        for s in ordered:
            ids = self._order.setdefault(s["project_id"], [])
            self._pos[s["id"]] = len(ids)
            ids.append(s["id"])

    def get(self, project_id: str, snapshot_id: str) -> dict[str, Any] | None:
        snap = self.data.get(snapshot_id)
        if snap is None or snap["project_id"] != project_id:
            return None  # another project's snapshot is as invisible as a missing one
        return snap

    def update(self, snap: dict[str, Any], changes: dict[str, str]) -> dict[str, Any]:
        new = dict(snap)
        new.update(changes)
        new["updated_at"] = fmt_time(time.time())
        self.data[new["id"]] = new
        return new

    def list_page(
        self,
        project_id: str,
        *,
        limit: int,
        marker: str | None = None,
        offset: int = 0,
        filters: dict[str, str] | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page after `marker` (exclusive) and `offset` matches; also whether more remain."""
        order = self._order.get(project_id, [])
        start = 0
        if marker is not None:
            snap = self.data.get(marker)
            if snap is None or snap["project_id"] != project_id:
                raise MarkerNotFound(marker)
            start = self._pos[marker] + 1
        data = self.data
        if not filters:
            begin = start + offset
            ids = order[begin : begin + limit]
            return [data[i] for i in ids], begin + limit < len(order)
        page: list[dict[str, Any]] = []
        skip = offset
        for i in range(start, len(order)):
            snap = data[order[i]]
            if any(snap.get(k) != v for k, v in filters.items()):
                continue
            if skip:
                skip -= 1
                continue
            if len(page) == limit:
                return page, True
            page.append(snap)
        return page, False
