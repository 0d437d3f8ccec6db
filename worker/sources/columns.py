"""Which input column feeds which job field: built-in aliases, then the user's --column overrides."""

from __future__ import annotations

from dataclasses import dataclass

from ..jobs import UUID_ANY_CASE_RE

# Job fields and the header names that mean them, most specific first (compared case-insensitively).
ALIASES: dict[str, tuple[str, ...]] = {
    "snapshot_id": ("snapshot_id", "id"),
    "project_id": ("project_id", "tenant_id"),
    "name": ("new_name", "name"),
    "display_name": ("display_name",),
    "description": ("new_description", "description"),
    "display_description": ("display_description",),
    "previous_name": ("previous_name", "old_name"),
    "previous_description": ("previous_description", "old_description"),
}
FIELDS = tuple(ALIASES)
INVENTORY_ALIASES: dict[str, tuple[str, ...]] = {
    **ALIASES,
    "name": ("new_name",),
    "display_name": (),
    "description": ("new_description",),
    "display_description": (),
    "previous_name": ("previous_name", "old_name", "name", "display_name"),
    "previous_description": (
        "previous_description", "old_description", "description", "display_description"
    ),
}


class HeaderError(ValueError):
    """The header cannot be used at all: no row of the file can run."""


@dataclass(frozen=True)
class ColumnMap:
    """field -> index into a CSV row (or key of a JSON object)."""

    positions: dict[str, int]
    headers: tuple[str, ...]


def parse_overrides(specs: list[str] | None) -> dict[str, str]:
    """`--column target=source` flags into {target: source header}."""
    overrides: dict[str, str] = {}
    for spec in specs or ():
        target, sep, source = spec.partition("=")
        target = target.strip()
        if not sep or not source.strip():
            raise HeaderError(f"--column {spec!r}: write it as TARGET=SOURCE_HEADER")
        if target not in ALIASES:
            raise HeaderError(
                f"--column {spec!r}: unknown target {target!r}; targets are {', '.join(FIELDS)}"
            )
        overrides[target] = source.strip()
    return overrides


def resolve(headers: list[str], overrides: dict[str, str], source: str) -> ColumnMap:
    normalised = [h.strip().lstrip("\ufeff").lower() for h in headers]
    first: dict[str, int] = {}
    for index, header in enumerate(normalised):
        if header and header in first:
            raise HeaderError(f"{source}: line 1: the column {headers[index]!r} appears twice")
        first.setdefault(header, index)

    # An exported inventory with added new_name/new_description columns: its plain Name and
    # Description columns hold the current values, never targets (they may be stale).
    aliases = INVENTORY_ALIASES if {"new_name", "new_description"} & first.keys() else ALIASES
    positions: dict[str, int] = {}
    for target, source_header in overrides.items():
        index = first.get(source_header.lower())
        if index is None:
            raise HeaderError(
                f"{source}: line 1: --column {target}={source_header}: no such column; "
                f"found {_list(headers)}"
            )
        positions[target] = index
    taken = set(positions.values())
    for target, names in aliases.items():
        if target in positions:
            continue
        for alias in names:
            index = first.get(alias)
            if index is not None and index not in taken:
                positions[target] = index
                taken.add(index)
                break

    if "snapshot_id" not in positions:
        if any(UUID_ANY_CASE_RE.fullmatch(h.strip()) for h in headers):
            raise HeaderError(
                f"{source}: line 1 is a row, not a header (it holds a snapshot id): add a header "
                "line such as snapshot_id,name"
            )
        raise HeaderError(
            f"{source}: line 1: no snapshot id column; found {_list(headers)}. "
            "Name one with --column snapshot_id=HEADER"
            + _delimiter_hint(headers)
        )
    if not {"name", "display_name", "description", "display_description"} & positions.keys():
        raise HeaderError(
            f"{source}: line 1: no name or description column; found {_list(headers)}. "
            "Name one with --column name=HEADER or --column description=HEADER"
        )
    return ColumnMap(positions, tuple(headers))


def _list(headers: list[str]) -> str:
    shown = ", ".join(repr(h) for h in headers[:20])
    return shown + (f" and {len(headers) - 20} more" if len(headers) > 20 else "") if headers else "none"


def _delimiter_hint(headers: list[str]) -> str:
    if len(headers) == 1:
        for delimiter in (";", "\t", "|"):
            if delimiter in headers[0]:
                return f" (the header looks {delimiter!r}-separated: pass --delimiter {delimiter!r})"
    return ""
