"""Writing a jobs file (what `plan` and `undo` produce for `run`): CSV, where an empty cell leaves
a field unchanged and a lone quote (spreadsheet.EMPTY_CELL) is an empty value, or JSON Lines,
where a field left out is unchanged and "" is an empty value.
CSV cells a spreadsheet would run as formulas are quoted (worker/spreadsheet.py); `run` reads
them back exactly."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping
from typing import IO

from .errors import ConfigError
from .jobs import JOB_COLUMNS
from .spreadsheet import known_to_spreadsheet


class JobsWriter:
    """The CSV header is written with the first job (or at the end), so a job that fails at once
    writes nothing."""

    def __init__(self, out: IO[str], fmt: str, columns: tuple[str, ...] = JOB_COLUMNS) -> None:
        self._out = out
        self._columns = columns
        self._csv = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
        self._header_due = self._csv is not None

    def write(self, values: Mapping[str, str | None]) -> None:
        if self._csv is not None:
            self._header()
            self._csv.writerow([known_to_spreadsheet(values.get(column)) for column in self._columns])
        else:
            self._out.write(json.dumps({k: values[k] for k in self._columns if values.get(k) is not None},
                                       ensure_ascii=False) + "\n")

    def finish(self) -> None:
        self._header()

    def _header(self) -> None:
        if self._header_due and self._csv is not None:
            self._csv.writerow(self._columns)
            self._header_due = False


def format_for(path: str | None, given: str | None) -> str:
    """--format when given, else from the output's extension; CSV by default."""
    return given or ("jsonl" if (path or "").endswith((".jsonl", ".ndjson")) else "csv")


def write_jobs(jobs: Iterable[Mapping[str, str | None]], path: str | None, fmt: str) -> int:
    """A whole jobs file at `path` (None: stdout), or none at all; the number of jobs written."""
    target = JobsOutput(path)
    count = 0
    try:
        writer = JobsWriter(target.stream, fmt)
        for job in jobs:
            writer.write(job)
            count += 1
        writer.finish()
    except BaseException:
        target.abandon()
        raise
    target.commit()
    return count


class JobsOutput:
    """Where a jobs file goes: stdout, in UTF-8 whatever the terminal's locale (a name is data, not
    a message to escape), or a file that appears whole: written to a temporary file of our own
    beside it (mkstemp: never a link someone planted) and renamed over it by `commit`."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._tmp: str | None = None
        if path is None:
            sys.stdout.flush()
            buffer = getattr(sys.stdout, "buffer", None)
            self.stream: IO[str] = (io.TextIOWrapper(buffer, encoding="utf-8", newline="")
                                    if buffer is not None else sys.stdout)
            return
        folder = os.path.dirname(os.path.abspath(path))
        try:
            fd, self._tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                             dir=folder)
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
        self.stream = os.fdopen(fd, "w", encoding="utf-8", newline="")

    def commit(self) -> None:
        if self._tmp is None:
            self._release_stdout()
            return
        self.stream.close()
        assert self.path is not None
        os.replace(self._tmp, self.path)

    def abandon(self) -> None:
        if self._tmp is None:
            self._release_stdout()
            return
        self.stream.close()
        os.unlink(self._tmp)

    def _release_stdout(self) -> None:
        self.stream.flush()
        if isinstance(self.stream, io.TextIOWrapper) and self.stream is not sys.stdout:
            self.stream.detach()  # the process's stdout stays open
