"""The report: one row per input row, in CSV or JSON Lines, appended and flushed per row by a
single writer, so that a killed job leaves a readable report.

A new report is created with O_EXCL and mode 0600 (it names every snapshot and the servers'
messages): never through a link planted at its path, never readable by other users. CSV cells
that a spreadsheet would run as formulas are written with a quote first (worker/spreadsheet.py);
the journal takes it off when the report is read back."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from operator import attrgetter
from typing import IO

from .results import Result
from .spreadsheet import known_to_spreadsheet, to_spreadsheet

COLUMNS = (
    "line", "snapshot_id", "project_id", "region", "name", "description", "outcome", "http_status",
    "error_code", "error_message", "attempts", "latency_ms", "request_id", "server_name",
    "server_description", "previous_name", "previous_description", "finished_at",
)
# The header of reports written before the region column: still resumed, and appended to in
# their own columns.
LEGACY_COLUMNS = tuple(c for c in COLUMNS if c != "region")
# Values that may be known to be empty: such a CSV cell is spreadsheet.EMPTY_CELL (an empty cell
# is "not known"), so that undo can put back an empty description.
VALUE_COLUMNS = frozenset({"name", "description", "server_name", "server_description", "previous_name",
                           "previous_description"})
REPORT_FORMATS = ("csv", "jsonl")
NEW_FILE_MODE = 0o600


def create_new(path: str) -> int:
    """A new file, mode 0600, opened for reading and writing; FileExistsError when anything is at
    the path already (a dangling symlink included: O_EXCL follows no link)."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)


def _open(path: str, append: bool) -> int:
    """The report opened for appending: a new one is created, an existing one is truncated
    (unless `append`)."""
    try:
        return create_new(path)
    except FileExistsError:
        return os.open(path, os.O_RDWR | (0 if append else os.O_TRUNC))


class ReportWriter:
    """`fd`: the report, already open (journal.open_report, which locks it first); without one,
    the path is opened here. Rows are written at the end of the file."""

    def __init__(self, path: str, fmt: str = "csv", redact: Callable[[str], str] = str,
                 append: bool = False, fsync: bool = False, fd: int | None = None) -> None:
        self.path = path
        self.fmt = fmt
        self._redact = redact
        # With fsync on, the engine runs sync() in a thread after each batch (see engine.Sink).
        self.sync = self._fsync_file if fsync else None
        if fd is None:
            fd = _open(path, append)
        try:
            empty = os.lseek(fd, 0, os.SEEK_END) == 0
            self._file: IO[str] = open(fd, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed by close()
        except BaseException:
            os.close(fd)
            raise
        self._csv = csv.writer(self._file) if fmt == "csv" else None
        self.columns = COLUMNS if empty or fmt != "csv" else _columns_of(fd)
        self._values = attrgetter(*self.columns)  # a result's values in column order, in one call
        self._cells = tuple(_value_cell if name in VALUE_COLUMNS else _other_cell for name in self.columns)
        if self._csv is not None and empty:
            self._csv.writerow(COLUMNS)
            self._file.flush()

    def write_batch(self, results: list[Result]) -> None:
        """Rows that finished together are flushed together: one flush a row when the job is
        slow, one a batch when it is fast."""
        redact, values, columns = self._redact, self._values, self.columns
        if self._csv is not None:
            # One pass a cell (redacted, then made safe for a spreadsheet), one call a batch.
            self._csv.writerows([[cell(redact(v) if isinstance(v, str) else v)
                                  for cell, v in zip(self._cells, values(result), strict=True)]
                                 for result in results])
        else:
            self._file.write("".join(
                json.dumps(dict(zip(columns, [redact(v) if isinstance(v, str) else v
                                              for v in values(result)], strict=True)),
                           ensure_ascii=False) + "\n"
                for result in results))
        self._file.flush()

    def _fsync_file(self) -> None:
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def _columns_of(fd: int) -> tuple[str, ...]:
    """The columns of an existing CSV report: its header's (a report begun before the region
    column keeps its own), else today's."""
    head = os.pread(fd, 4096, 0).split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")
    return LEGACY_COLUMNS if head == ",".join(LEGACY_COLUMNS) else COLUMNS


def _value_cell(value: object) -> object:
    """A value column's cell: None (not known) and "" (known to be empty) differ."""
    if value is None or isinstance(value, str):
        return known_to_spreadsheet(value)
    return value


def _other_cell(value: object) -> object:
    return to_spreadsheet(value) if isinstance(value, str) else value
