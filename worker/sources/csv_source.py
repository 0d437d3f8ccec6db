"""CSV rows, streamed: quoted fields with commas, quotes and newlines; BOM; CRLF.

Broken files keep their good rows: a quote that is never closed swallows the rest of the file
into one field, so the lines it swallowed are read again on their own; so are the lines of a
field over the size limit. A header repeated mid-file (two files joined) is named as such."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any, TextIO

from ..jobs import Problem, RawRow, Rejection
from .columns import ColumnMap, HeaderError, resolve
from .text import undecodable, undecodable_rejection

# Names are at most 255 bytes; a much longer field is a broken file, not data to hold in memory.
FIELD_SIZE_LIMIT = 1 << 20
csv.field_size_limit(FIELD_SIZE_LIMIT)


class _Lines:
    """The stream's lines for csv.reader, keeping those of the record being read (to read them
    again) and noticing the end of the file. A BOM opening a line (files joined) is dropped."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self.record: list[str] = []
        self.eof = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        try:
            line = next(self._lines)
        except StopIteration:
            self.eof = True
            raise
        if line.startswith("\ufeff"):
            line = line[1:]
        self.record.append(line)
        return line


def read_csv(
    stream: TextIO, source: str, overrides: dict[str, str], delimiter: str = ","
) -> tuple[Iterator[RawRow | Rejection], frozenset[str]]:
    """Reads and checks the header now (HeaderError); returns the rows, streamed, and the job
    fields the header maps."""
    lines = _Lines(iter(stream))
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise HeaderError(f"{source}: the file is empty (expected a header line)") from None
    except csv.Error as exc:
        raise HeaderError(f"{source}: line 1: unreadable header: {exc}") from None
    if lines.eof and len(lines.record) > 1:
        raise HeaderError(f"{source}: line 1: a quote in the header is never closed")
    text = "".join(header)
    if "\x00" in text or undecodable(text):
        raise HeaderError(f"{source}: line 1: the header is not UTF-8 text: save the file as "
                          "UTF-8 CSV (is it UTF-16, a spreadsheet or compressed?)")
    columns: ColumnMap = resolve(header, overrides, source)
    rows = _rows(_records(lines, reader, delimiter, len(lines.record) + 1), columns, header)
    return rows, frozenset(columns.positions)


def _records(lines: _Lines, reader: Any, delimiter: str, line: int) -> Iterator[tuple[int, list[str] | Problem]]:
    """(first line, cells or the problem) of each record. A stack of readers: the lines swallowed
    by a broken record are read again by a reader of their own, before the outer one goes on."""
    stack = [(lines, reader)]
    next_line = [line]
    while stack:
        lines, reader = stack[-1]
        line = next_line[-1]
        lines.record = []
        try:
            cells: list[str] | None = next(reader)
            problem = None
        except StopIteration:
            stack.pop()
            next_line.pop()
            continue
        except csv.Error as exc:
            cells, problem = None, _problem(exc)
        span = len(lines.record)
        next_line[-1] = line + span
        if cells is not None and lines.eof and span > 1:  # the file ended inside quotes
            cells, problem = None, Problem(
                None, "unterminated_quote",
                f"a quote opened in this row is never closed (lines {line}-{line + span - 1} "
                "would be one field); the lines after this one are read on their own")
        if cells is not None:
            yield line, cells
            continue
        assert problem is not None
        yield line, problem
        if span > 1:
            swallowed = _Lines(iter(lines.record[1:]))
            stack.append((swallowed, csv.reader(swallowed, delimiter=delimiter)))
            next_line.append(line + 1)


def _problem(exc: csv.Error) -> Problem:
    if "field larger than field limit" in str(exc):
        return Problem(None, "line_too_long",
                       f"a field is longer than {FIELD_SIZE_LIMIT:,} characters: not a jobs row")
    return Problem(None, "unreadable_row", str(exc))


def _rows(records: Iterator[tuple[int, list[str] | Problem]], columns: ColumnMap,
          header: list[str]) -> Iterator[RawRow | Rejection]:
    width = len(header)
    normalised_header = [h.strip().lower() for h in header]
    for line, row in records:
        if isinstance(row, Problem):
            yield Rejection(line, {}, [row])
            continue
        if not any(cell.strip() for cell in row):
            continue  # blank line
        fields = {field: (row[i] if i < len(row) and row[i] != "" else None)
                  for field, i in columns.positions.items()}
        if len(row) != width:
            yield Rejection(line, fields, [Problem(
                None,
                "wrong_field_count",
                f"{len(row)} fields but the header has {width}"
                + (" (an unquoted comma in a value?)" if len(row) > width else ""),
            )])
            continue
        if [cell.strip().lower() for cell in row] == normalised_header:
            yield Rejection(line, {}, [Problem(None, "repeated_header",
                                               "this row repeats the header (two files joined?)")])
            continue
        yield undecodable_rejection(line, fields) or RawRow(line, fields)

