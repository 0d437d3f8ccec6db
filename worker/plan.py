"""Plan a relabel from live state: page through the snapshot list, select snapshots by a regex on
their current name (and status, volume, creation time), render the new values from templates,
check every rendered value with the rules of `run`, and write the jobs with the current values
as previous_name/previous_description, so that the report of the run can be undone.

Templates are Python format strings over the regex's named groups and the snapshot's fields:
`--name 'prod-{env}-{created_at:%Y%m%d}-{id:.8}'`. A named group wins over a field of the same
name."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from .backup import is_backup_owned
from .errors import ConfigError
from .jobs import Job, Problem, RawRow, Rejection, Validator

SNAPSHOT_FIELDS = ("id", "name", "description", "status", "size", "volume_id", "created_at",
                   "updated_at", "project_id")
DIFF_ROWS = 20  # changes --diff shows before the totals


class PlanError(ConfigError):
    """A template or selection that cannot work (exit code 2)."""


class Template:
    """One --name/--description template, its fields checked before any request is sent."""

    def __init__(self, option: str, text: str, pattern: re.Pattern[str]) -> None:
        self.option = option
        self.text = text
        known = {*SNAPSHOT_FIELDS, *pattern.groupindex}
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise PlanError(f"{option} {text!r}: {exc}") from None
        for _, name, _, _ in parsed:
            if name is None:
                continue
            root = re.split(r"[.\[]", name, maxsplit=1)[0]
            if root not in known:
                groups = ", ".join(pattern.groupindex) or "none"
                raise PlanError(
                    f"{option} {text!r}: unknown field {{{root or '(positional)'}}}; fields are "
                    f"{', '.join(SNAPSHOT_FIELDS)} and the named groups of --match ({groups})")

    def render(self, values: dict[str, Any]) -> str:
        try:
            return self.text.format(**values)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            raise PlanError(f"{self.option} {self.text!r}: cannot render for snapshot "
                            f"{values.get('id')}: {exc}") from None


@dataclass(frozen=True)
class Selection:
    pattern: re.Pattern[str]
    status: str | None = None
    volume_id: str | None = None
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive
    include_backup_owned: bool = False

    def server_filters(self) -> dict[str, str]:
        return {k: v for k, v in (("status", self.status), ("volume_id", self.volume_id)) if v}


@dataclass
class Planned:
    snapshot: dict[str, Any]
    job: Job


@dataclass
class Refused:
    snapshot: dict[str, Any]
    rejection: Rejection


@dataclass
class PlanCounts:
    counts: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)  # rejected renders by code
    names: list[str] = field(default_factory=list)  # the first few names listed, to show a match of none

    def describe(self) -> str:
        c = self.counts
        parts = [f"{c['listed']} snapshots listed, {c['matched']} matched: {c['planned']} jobs"]
        if c["rejected"]:
            reasons = ", ".join(f"{code} {n}" for code, n in self.reasons.most_common())
            parts.append(f"{c['rejected']} rejected ({reasons})")
        if c["at_target"]:
            parts.append(f"{c['at_target']} already at target")
        if c["backup_owned"]:
            parts.append(f"{c['backup_owned']} backup-owned left alone (--allow-autobk-prefix "
                         "to include them)")
        return ", ".join(parts)


def parse_time(value: str, option: str) -> datetime:
    try:
        return _aware(datetime.fromisoformat(value))
    except ValueError:
        raise PlanError(f"{option} {value!r}: give a date or time such as 2024-06-01 or "
                        "2024-06-01T12:00:00Z") from None


def _aware(moment: datetime) -> datetime:
    """API times are UTC, often without an offset."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _time_field(value: Any) -> Any:
    """created_at as a datetime, so that format specs such as {created_at:%Y%m%d} work."""
    if isinstance(value, str):
        try:
            return _aware(datetime.fromisoformat(value))
        except ValueError:
            return value
    return value


async def plan(snapshots: AsyncIterator[dict[str, Any]], selection: Selection,
               name: Template | None, description: Template | None, validator: Validator,
               counts: PlanCounts) -> AsyncIterator[Planned | Refused]:
    """The planned job, or the rejected render, of every selected snapshot that would change."""
    project_id = validator.rules.default_project_id
    async for snapshot in snapshots:
        counts.counts["listed"] += 1
        current_name = _text(snapshot.get("name"))
        if len(counts.names) < 3:
            counts.names.append(current_name)
        match = selection.pattern.search(current_name)
        if match is None or not _in_range(snapshot, selection):
            continue
        counts.counts["matched"] += 1
        if is_backup_owned(snapshot) and not selection.include_backup_owned:
            counts.counts["backup_owned"] += 1
            continue
        current_description = _text(snapshot.get("description"))
        values = {key: snapshot.get(key) for key in SNAPSHOT_FIELDS}
        values.update(name=current_name, description=current_description, project_id=project_id)
        values["created_at"] = _time_field(values["created_at"])
        values["updated_at"] = _time_field(values["updated_at"])
        values.update(match.groupdict(default=""))
        new_name = name.render(values) if name else None
        new_description = description.render(values) if description else None
        if new_name == current_name:
            new_name = None
        if new_description == current_description:
            new_description = None
        if new_name is None and new_description is None:
            counts.counts["at_target"] += 1
            continue
        row = RawRow(counts.counts["matched"], {
            "snapshot_id": snapshot.get("id"), "project_id": project_id,
            "name": new_name, "description": new_description,
            "previous_name": current_name if new_name is not None else None,
            "previous_description": current_description if new_description is not None else None,
        })
        item = _validate(row, validator)
        if isinstance(item, Job):
            counts.counts["planned"] += 1
            yield Planned(snapshot, item)
        else:
            counts.counts["rejected"] += 1
            counts.reasons[item.code] += 1
            yield Refused(snapshot, item)


def _validate(row: RawRow, validator: Validator) -> Job | Rejection:
    for key in ("name", "description"):
        if row.fields[key] == "":  # an empty cell would mean "leave unchanged" in a jobs file
            return Rejection(row.line, row.fields, [Problem(key, "empty", "renders empty")])
    return validator.validate(row)


def _text(value: Any) -> str:
    """A listed name or description as text: a server's null (or a value of another type) is
    empty."""
    return value if isinstance(value, str) else ""


def _in_range(snapshot: dict[str, Any], selection: Selection) -> bool:
    if selection.status and snapshot.get("status") != selection.status:
        return False  # also checked here: a server may ignore a filter it does not know
    if selection.volume_id and snapshot.get("volume_id") != selection.volume_id:
        return False
    if selection.created_after or selection.created_before:
        created = _time_field(snapshot.get("created_at"))
        if not isinstance(created, datetime):
            return False
        if selection.created_after and created < selection.created_after:
            return False
        if selection.created_before and created >= selection.created_before:
            return False
    return True


# -- output -------------------------------------------------------------------------------------

class DiffPrinter:
    """`--diff`: the first changes as old → new, aligned for a terminal (CJK is two columns)."""

    def __init__(self, out: IO[str], rows: int = DIFF_ROWS) -> None:
        self._out = out
        self._rows = rows
        self.shown = 0

    def write(self, job: Job) -> None:
        if self.shown >= self._rows:
            return
        self.shown += 1
        changes = [("name", job.previous_name, job.name),
                   ("description", job.previous_description, job.description)]
        label = job.snapshot_id
        for field_name, old, new in changes:
            if new is None:
                continue
            self._out.write(f"{label:<36}  {field_name:<11}  {_pad(_show(old), 32)} → {_show(new)}\n")
            label = ""

    def close(self, total: int) -> None:
        if total > self.shown:
            self._out.write(f"… and {total - self.shown} more\n")


def _show(value: str | None) -> str:
    return value or "(empty)"


def _pad(text: str, width: int) -> str:
    shown = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    return text + " " * max(0, width - shown)


def describe_refusal(refused: Refused) -> str:
    snapshot = refused.snapshot
    problems = "; ".join(f"{p.field}: {p.message} [{p.code}]" if p.field else f"{p.message} [{p.code}]"
                         for p in refused.rejection.problems)
    return f"{snapshot.get('id')} ({snapshot.get('name') or ''}): {problems}"

