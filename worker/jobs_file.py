"""Writing a jobs file (what `plan` and `undo` produce for `run`): CSV, where an empty cell leaves
a field unchanged, or JSON Lines, where a field left out is unchanged and "" is an empty value."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from typing import IO

from .jobs import JOB_COLUMNS


class JobsWriter:
    """The CSV header is written with the first job (or at the end), so a job that fails at once
    writes nothing."""

    def __init__(self, out: IO[str], fmt: str) -> None:
        self._out = out
        self._csv = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
        self._header_due = self._csv is not None

    def write(self, values: Mapping[str, str | None]) -> None:
        if self._csv is not None:
            self._header()
            self._csv.writerow([values.get(column) or "" for column in JOB_COLUMNS])
        else:
            self._out.write(json.dumps({k: values[k] for k in JOB_COLUMNS if values.get(k) is not None},
                                       ensure_ascii=False) + "\n")

    def finish(self) -> None:
        self._header()

    def _header(self) -> None:
        if self._header_due and self._csv is not None:
            self._csv.writerow(JOB_COLUMNS)
            self._header_due = False
