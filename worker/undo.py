"""Undo: the jobs that put back what a job changed, read from its report.

It follows the journal's rule (a line's answer is its final row, else its last row) and restores
every row whose change landed or may have landed: `applied`, and rows sent without a clear
answer (`failed` after timeouts or 5xx, `interrupted` while in flight). For each such row, each
field the job set gets its previous value back, when the report knows it. Its own previous
values are the job's targets, so undoing the undo works as well.

Empty values: in CSV an empty cell means "unknown" (a report) or "leave unchanged" (a jobs file);
a value known to be empty is a lone quote (worker/spreadsheet.py), as `null` and `""` in JSON
Lines. So an empty previous description is restored whatever the formats. Whatever cannot be
restored is counted on stderr, with its cause, and the exit code is 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import IO, Any

from .api.errors import TRANSIENT_STATUSES
from .backup import AUTOBK_PREFIX
from .journal import LineSet, Record
from .results import Outcome

SHOWN_LINES = 10  # lines listed per problem on stderr


class Undo:
    def __init__(self, final: LineSet) -> None:
        self.final = final
        self._recorded: set[str] = set()  # fields of which the report knows some previous value
        self.counts: Counter[str] = Counter()
        self.lines: dict[str, list[int]] = {}  # problem -> the first input lines that have it
        self._taken = LineSet()  # lines already written
        self._unfinished = LineSet()

    @property
    def incomplete(self) -> bool:
        return any(self.counts[problem] for problem in ("unknown_name", "unknown_description", "unfinished"))

    def jobs(self, records: Iterator[Record]) -> Iterator[dict[str, str | None]]:
        for record in records:
            if not record.outcome.final:
                if record.line in self.final:
                    continue  # superseded by the line's final row
                if record.outcome is Outcome.INTERRUPTED and record.line not in self._unfinished:
                    self._unfinished.add(record.line)
                    self._note("unfinished", record.line)
            if record.line in self._taken or not self._changed(record):
                continue
            self._taken.add(record.line)
            job = self._job(record)
            if job is not None:
                self.counts["rows"] += 1
                yield job

    def _changed(self, record: Record) -> bool:
        """Whether the row's change landed, or may have."""
        if record.outcome is Outcome.APPLIED:
            return True
        if record.outcome not in (Outcome.FAILED, Outcome.INTERRUPTED):
            return False
        status = _int(record.fields.get("http_status"))
        # No answer, a transient one, or a 2xx the tool could not confirm (204, HTML): the
        # server may have applied it.
        return (_int(record.fields.get("attempts")) or 0) > 0 and (
            status is None or status in TRANSIENT_STATUSES or 200 <= status < 300)

    def _job(self, record: Record) -> dict[str, str | None] | None:
        fields = record.fields
        job: dict[str, str | None] = {"snapshot_id": fields.get("snapshot_id"),
                                      "project_id": fields.get("project_id") or None}
        restored = False
        for key in ("name", "description"):
            target = _value(fields.get(key))
            if target is None:
                continue  # the job did not set this field
            previous = _value(fields.get(f"previous_{key}"))
            if previous is None:
                self._note(f"unknown_{key}", record.line)
            else:
                self._recorded.add(key)
                job[key] = previous
                job[f"previous_{key}"] = target
                restored = True
                if key == "name" and previous.startswith(AUTOBK_PREFIX):
                    self._note("autobk", record.line)
        return job if restored else None

    def _unknown(self, key: str) -> str:
        """Why a previous value is not in the report: nothing told the job, or (when other rows
        have one) these rows' own previous value was not given."""
        if key in self._recorded:
            return (f"changed a {key} whose previous_{key} the report leaves empty: not known when "
                    f"the job ran (the input's previous_{key} cell was empty, or the report was "
                    f"written before snaprelabel recorded an empty value as a lone quote ')")
        return (f"changed a {key} but the report records no previous {key} at all: the job was "
                f"not told the current values (run it with --skip-unchanged, or give them in a "
                f"previous_{key} column or an inventory's {key} column)")

    def _note(self, problem: str, line: int) -> None:
        self.counts[problem] += 1
        shown = self.lines.setdefault(problem, [])
        if len(shown) < SHOWN_LINES:
            shown.append(line)

    def explain(self, report: str, err: IO[str]) -> None:
        print(f"undo: {self.counts['rows']} rows to restore from {report}", file=err)
        messages = {
            **{f"unknown_{key}": self._unknown(key) for key in ("name", "description")},
            "unfinished": "have no final row (the job did not finish): resume it to its end, "
                          "then undo",
            "autobk": f"restore a name starting {AUTOBK_PREFIX}: run the undo job with "
                      "--allow-autobk-prefix",
        }
        for problem, message in messages.items():
            if self.counts[problem]:
                lines = ", ".join(map(str, self.lines[problem]))
                more = " …" if self.counts[problem] > len(self.lines[problem]) else ""
                print(f"undo: {self.counts[problem]} rows {message} (input lines {lines}{more})",
                      file=err)


def _value(value: Any) -> str | None:
    """A report cell as a value: None when unknown (the journal gives None for an empty CSV cell,
    "" for a known empty value)."""
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
