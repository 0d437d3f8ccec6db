"""The report: one row per input row, in CSV or JSON Lines, appended and flushed per row by a
single writer, so that a killed job leaves a readable report."""

from __future__ import annotations

import csv
import json
import os
from typing import IO, Callable

from .results import Result

COLUMNS = (
    "line", "snapshot_id", "project_id", "name", "description", "outcome", "http_status",
    "error_code", "error_message", "attempts", "latency_ms", "request_id", "server_name",
    "server_description", "previous_name", "previous_description", "finished_at",
)
REPORT_FORMATS = ("csv", "jsonl")


class ReportWriter:
    def __init__(self, path: str, fmt: str = "csv", redact: Callable[[str], str] = str,
                 append: bool = False, fsync: bool = False) -> None:
        self.path = path
        self.fmt = fmt
        self._redact = redact
        # With fsync on, the engine runs sync() in a thread after each batch (see engine.Sink).
        self.sync = self._fsync_file if fsync else None
        exists = append and os.path.exists(path) and os.path.getsize(path) > 0
        self._file: IO[str] = open(path, "a" if append else "w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file) if fmt == "csv" else None
        if self._csv is not None and not exists:
            self._csv.writerow(COLUMNS)
            self._file.flush()

    def write_batch(self, results: list[Result]) -> None:
        """Rows that finished together are flushed together: one flush a row when the job is
        slow, one a batch when it is fast."""
        for result in results:
            row = [_cell(getattr(result, name), self._redact) for name in COLUMNS]
            if self._csv is not None:
                self._csv.writerow(row)
            else:
                self._file.write(json.dumps(dict(zip(COLUMNS, row)), ensure_ascii=False) + "\n")
        self._file.flush()

    def _fsync_file(self) -> None:
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def _cell(value: object, redact: Callable[[str], str]) -> object:
    if isinstance(value, str):
        return redact(value)
    return value

