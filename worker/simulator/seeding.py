"""Deterministic seed data: generated from a seed, or read from a CSV inventory."""

from __future__ import annotations

import csv
import json
import random
import time
from pathlib import Path
from typing import Any

AUTOBK_PREFIX = "autobk_snapshot_"
SYSTEM_METADATA = {"__system__enableActive": "true"}
_START = 1704067200  # 2024-01-01T00:00:00Z
_SPAN = 2 * 365 * 86400  # spread creation over 2024-2025 (ends early 2026)
_DESCRIPTIONS = (
    "daily backup",
    "before kernel upgrade",
    "pre-migration",
    "weekly snapshot of data disk",
    "数据盘每日快照",
)


# (second, its formatted prefix): PUTs within one second reuse it. One tuple, swapped whole,
# so simulators in two threads cannot pair a second with another second's prefix.
_last_second: tuple[int, str] = (-1, "")


def fmt_time(epoch_seconds: float) -> str:
    """Cinder's timestamp form: naive UTC with microseconds, 2024-03-05T10:11:12.000000."""
    global _last_second
    whole = int(epoch_seconds)
    micros = int((epoch_seconds - whole) * 1_000_000)
    second, prefix = _last_second
    if second != whole:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _last_second = (whole, prefix)
    return f"{prefix}.{micros:06d}"


def _uuid(rng: random.Random) -> str:
    """A UUID4-shaped id from the seeded RNG (uuid.UUID is three times slower at 1M rows)."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def generate(count: int, project_id: str, seed: int, autobk_fraction: float) -> list[dict[str, Any]]:
    """`count` snapshots; same arguments, same snapshots. Oldest first, so snap-000000 lists first."""
    rng = random.Random(seed)
    rnd = rng.random  # one call per value keeps 1M rows to a few seconds
    volumes = [_uuid(rng) for _ in range(max(1, count // 3))]
    # Sorted creation times keep listing order (created_at, id) equal to the numbering.
    times = sorted(_START + rnd() * _SPAN for _ in range(count))
    autobk = set(rng.sample(range(count), round(count * autobk_fraction)))
    n_vol, n_desc = len(volumes), len(_DESCRIPTIONS)
    out = []
    for i in range(count):
        sid = _uuid(rng)
        roll = rnd()
        status = "available" if roll < 0.94 else "in-use" if roll < 0.97 else "error"
        roll = rnd()
        description = _DESCRIPTIONS[int(roll / 0.4 * n_desc)] if roll < 0.4 else ""
        created = fmt_time(times[i])
        snap = {
            "id": sid,
            "project_id": project_id,
            "name": f"snap-{i:06d}",
            "description": description,
            "status": status,
            "size": 1 + int(rnd() * 1000),
            "volume_id": volumes[int(rnd() * n_vol)],
            "created_at": created,
            "updated_at": created,
            "metadata": {},
        }
        if i in autobk:
            snap["name"] = f"{AUTOBK_PREFIX}vbs_{sid[:8]}"
            snap["metadata"] = dict(SYSTEM_METADATA)
        out.append(snap)
    return out


def load_csv(path: Path, project_id: str, seed: int) -> list[dict[str, Any]]:
    """Exactly the rows of a CSV inventory (UTF-8, BOM tolerated).

    Columns: id, name, description; optional project_id, volume_id, size, status, created_at,
    metadata (a JSON object). Missing values are filled deterministically from `seed`; rows get
    increasing creation times in file order, so the listing order is the file order. A name
    starting autobk_snapshot_ without a metadata column gets the backup system metadata.
    """
    rng = random.Random(seed)
    with Path(path).open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        fields = {f.strip() for f in reader.fieldnames or ()}
        missing = {"id", "name", "description"} - fields
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        for lineno, raw in enumerate(reader, start=2):
            row = {(k or "").strip(): (v or "") for k, v in raw.items()}
            sid = row["id"].strip()
            if not sid:
                raise ValueError(f"{path}:{lineno}: empty id")
            if sid in seen:
                raise ValueError(f"{path}:{lineno}: duplicate id {sid}")
            seen.add(sid)
            created = row.get("created_at", "").strip() or fmt_time(_START + len(out))
            metadata_text = row.get("metadata", "").strip()
            if metadata_text:
                metadata = json.loads(metadata_text)
                if not isinstance(metadata, dict):
                    raise ValueError(f"{path}:{lineno}: metadata must be a JSON object")
            else:
                metadata = dict(SYSTEM_METADATA) if row["name"].startswith(AUTOBK_PREFIX) else {}
            size_text = row.get("size", "").strip()
            size = int(size_text) if size_text else rng.randint(1, 1000)
            volume_id = row.get("volume_id", "").strip() or _uuid(rng)
            out.append(
                {
                    "id": sid,
                    "project_id": row.get("project_id", "").strip() or project_id,
                    "name": row["name"],
                    "description": row["description"],
                    "status": row.get("status", "").strip() or "available",
                    "size": size,
                    "volume_id": volume_id,
                    "created_at": created,
                    "updated_at": created,
                    "metadata": metadata,
                }
            )
    return out
