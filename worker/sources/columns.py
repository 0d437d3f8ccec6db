"""Which input column feeds which job field: built-in aliases, then the user's --column overrides."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from ..jobs import UUID_ANY_CASE_RE

# Header names as exported by openstack CLI (ID, Name, Description, ...) and by the cloud
# consoles, in English and Chinese. Compared by header_key: "Snapshot ID" is snapshot_id.
NEW_NAME = ("new_name", "新名称", "新快照名称")
NEW_DESCRIPTION = ("new_description", "新描述", "新快照描述")
CURRENT_NAME = ("name", "snapshot_name", "名称", "快照名称")
CURRENT_DESCRIPTION = ("description", "snapshot_description", "描述", "快照描述")

# Job fields and the header names that mean them, most specific first.
ALIASES: dict[str, tuple[str, ...]] = {
    "snapshot_id": ("snapshot_id", "id", "快照id"),
    "project_id": ("project_id", "tenant_id", "项目id"),
    "region": ("region", "region_id", "region_name", "区域", "区域id"),
    "name": (*NEW_NAME, *CURRENT_NAME),
    "display_name": ("display_name",),
    "description": (*NEW_DESCRIPTION, *CURRENT_DESCRIPTION),
    "display_description": ("display_description",),
    "previous_name": ("previous_name", "old_name", "原名称", "旧名称"),
    "previous_description": ("previous_description", "old_description", "原描述", "旧描述"),
}
FIELDS = tuple(ALIASES)
INVENTORY_ALIASES: dict[str, tuple[str, ...]] = {
    **ALIASES,
    "name": NEW_NAME,
    "display_name": (),
    "description": NEW_DESCRIPTION,
    "display_description": (),
    "previous_name": (*ALIASES["previous_name"], *CURRENT_NAME, "display_name"),
    "previous_description": (
        *ALIASES["previous_description"], *CURRENT_DESCRIPTION, "display_description"
    ),
}
_SEPARATORS = re.compile(r"[\s_\-]+")


def header_key(header: str) -> str:
    """How headers compare: case, a BOM, spaces, '_' and '-' do not matter."""
    return _SEPARATORS.sub("", header.strip().lstrip("\ufeff").casefold())


_NEW_VALUE_KEYS = frozenset(header_key(h) for h in (*NEW_NAME, *NEW_DESCRIPTION))


class HeaderError(ValueError):
    """The header cannot be used at all: no row of the file can run."""


@dataclass(frozen=True)
class ColumnMap:
    """field -> index into a CSV row (or key of a JSON object)."""

    positions: dict[str, int]
    headers: tuple[str, ...]
    # Fields whose empty cell is a value known to be empty, not a value not given: an exported
    # inventory's Name / Description columns list every snapshot's current values.
    empty_is_known: frozenset[str] = frozenset()


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


def resolve(headers: list[str], overrides: dict[str, str], source: str, line: int = 1) -> ColumnMap:
    """`line`: where the header is (a workbook's header row need not be the first)."""
    where = f"{source}: line {line}"
    first: dict[str, int] = {}
    for index, header in enumerate(headers):
        key = header_key(header)
        if key and key in first:
            raise HeaderError(f"{where}: the column {headers[index]!r} appears twice")
        first.setdefault(key, index)

    # An exported inventory with added new_name/new_description columns: its plain Name and
    # Description columns hold the current values, never targets (they may be stale).
    aliases = INVENTORY_ALIASES if _NEW_VALUE_KEYS & first.keys() else ALIASES
    positions: dict[str, int] = {}
    for target, source_header in overrides.items():
        found = first.get(header_key(source_header))
        if found is None:
            raise HeaderError(
                f"{where}: --column {target}={source_header}: no such column; "
                f"found {_list(headers)}"
            )
        positions[target] = found
    taken = set(positions.values())
    for target, names in aliases.items():
        if target in positions:
            continue
        for alias in names:
            found = first.get(header_key(alias))
            if found is not None and found not in taken:
                positions[target] = found
                taken.add(found)
                break

    unmapped = [h for i, h in enumerate(headers) if i not in positions.values() and h.strip()]
    if "snapshot_id" not in positions:
        if any(UUID_ANY_CASE_RE.fullmatch(h.strip()) for h in headers):
            raise HeaderError(f"{where} is a row, not a header (it holds a snapshot id): add a "
                              "header line such as snapshot_id,name")
        raise HeaderError(
            f"{where}: no snapshot id column; found {_list(headers)}. "
            f"Map one with {_suggest('snapshot_id', unmapped, ('id', 'uuid'))}"
            + _delimiter_hint(headers)
        )
    if not {"name", "display_name", "description", "display_description"} & positions.keys():
        raise HeaderError(
            f"{where}: no name or description column; found {_list(headers)}. "
            f"Map one with {_suggest('name', unmapped, ('name', 'label', '名'))} "
            "or --column description=HEADER"
        )
    current = {header_key(h) for h in (*CURRENT_NAME, *CURRENT_DESCRIPTION, "display_name", "display_description")}
    listed = frozenset(f for f in ("previous_name", "previous_description")
                       if aliases is INVENTORY_ALIASES and f in positions and f not in overrides
                       and header_key(headers[positions[f]]) in current)
    return ColumnMap(positions, tuple(headers), listed)


def _suggest(target: str, candidates: list[str], hints: tuple[str, ...]) -> str:
    """The --column flag for the likeliest unmapped header, quoted for a shell. Only a header
    that prints as it is: a line break or a control character from the file would break the
    message's line (and the log line it goes into)."""
    candidates = [h for h in candidates if h.isprintable()]
    likely = [h for h in candidates if any(hint in header_key(h) for hint in hints)]
    header = (likely or candidates or ["HEADER"])[0]
    return f"--column {shlex.quote(f'{target}={header}')}"


def _list(headers: list[str]) -> str:
    shown = ", ".join(repr(h) for h in headers[:20])
    return shown + (f" and {len(headers) - 20} more" if len(headers) > 20 else "") if headers else "none"


def _delimiter_hint(headers: list[str]) -> str:
    if len(headers) == 1:
        for delimiter in (";", "\t", "|"):
            if delimiter in headers[0]:
                return f" (the header looks {delimiter!r}-separated: pass --delimiter {delimiter!r})"
    return ""
