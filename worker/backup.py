"""The backup-owned rule, in one place: snapshots made by a backup (a name starting
`autobk_snapshot_`, or the metadata key a server backup sets) are left alone unless the user says
otherwise (`--allow-autobk-prefix`), because the console restricts them and a backup expects them
as it made them."""

from __future__ import annotations

from collections.abc import Mapping

AUTOBK_PREFIX = "autobk_snapshot_"
BACKUP_METADATA_KEY = "__system__enableActive"  # set on snapshots created by a server backup


def is_backup_name(name: object) -> bool:
    return isinstance(name, str) and name.startswith(AUTOBK_PREFIX)


def is_backup_owned(snapshot: Mapping[str, object]) -> bool:
    """A listed snapshot (any JSON: a field of the wrong type is simply not a sign)."""
    metadata = snapshot.get("metadata")
    return is_backup_name(snapshot.get("name")) or (
        isinstance(metadata, Mapping) and BACKUP_METADATA_KEY in metadata)
