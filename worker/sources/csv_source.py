"""CSV rows, streamed: quoted fields with commas, quotes and newlines; BOM; CRLF.

Broken files keep their good rows: a quote that is never closed swallows the rest of the file
into one field, so the lines it swallowed are read again on their own; so are the lines of a
field over the size limit. A header repeated mid-file (two files joined) is named as such.

Memory is bounded: a physical line is read at most MAX_LINE characters at a time, and a longer
one (a binary file, /dev/zero) is skipped to its end and rejected. A last record without its
line end is rejected when the input is a stream (stdin, a pipe): the producer may have died in
the middle of it. A regular file is trusted: files written by hand often lack the last line end."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from ..jobs import Problem, RawRow, Rejection
from ..spreadsheet import from_spreadsheet
from .columns import ColumnMap, HeaderError, resolve
from .text import printable, undecodable, undecodable_rejection

# Names are at most 255 bytes; a much longer field or line is a broken file, not data to hold.
FIELD_SIZE_LIMIT = 1 << 20
MAX_LINE = 1 << 20
csv.field_size_limit(FIELD_SIZE_LIMIT)
TOO_LONG = "\x00too long\x00"  # stands for a skipped line (a str, so the record list stays list[str])
_LINE_ENDS = ("\n", "\r")


class _LineTooLong(Exception):
    """Raised through csv.reader, which starts its next record afresh."""


class _Lines:
    """The lines for csv.reader, keeping those of the record being read (to read them again),
    and noticing the end of the input and a last line without its line end. `read` is a
    stream's readline; a line over MAX_LINE stands as TOO_LONG, and the rest of it is read
    without being held when the next line is asked for (never, when the header is too long:
    /dev/zero has no line end). A BOM opening a line (files joined) is dropped."""

    def __init__(self, read: Callable[[int], str]) -> None:
        self._read = read
        self._skipping = False
        self.record: list[str] = []
        self.eof = False
        self.unterminated = False  # the last line read has no line end: the input ended there

    @classmethod
    def again(cls, lines: list[str]) -> _Lines:
        """Lines already read, to be read again on their own."""
        rest = iter(lines)
        return cls(lambda _size: next(rest, ""))

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._skipping:
            self._skipping = False
            while (rest := self._read(MAX_LINE)) and not rest.endswith(_LINE_ENDS):
                pass
        line = self._read(MAX_LINE)
        if not line:
            self.eof = True
            raise StopIteration
        ended = line.endswith(_LINE_ENDS)
        if len(line) >= MAX_LINE and not ended:
            self._skipping = True
            line = TOO_LONG
        if line is TOO_LONG:
            self.record.append(line)
            raise _LineTooLong
        if line.startswith("\ufeff"):
            line = line[1:]
        self.record.append(line)
        self.unterminated = not ended
        return line


def read_csv(
    stream: TextIO, source: str, overrides: dict[str, str], delimiter: str = ",",
    trust_last_line: bool = True,
) -> tuple[Iterator[RawRow | Rejection], frozenset[str]]:
    """Reads and checks the header now (HeaderError); returns the rows, streamed, and the job
    fields the header maps. `trust_last_line`: False for a stream, whose last record is rejected
    when it has no line end."""
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise HeaderError(f"--delimiter {delimiter!r}: give one character, such as ';' or '\\t' "
                          "(not a quote or a line end)")
    lines = _Lines(stream.readline)
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise HeaderError(f"{source}: the file is empty (expected a header line)") from None
    except _LineTooLong:
        raise HeaderError(f"{source}: line 1 is longer than {MAX_LINE:,} characters: not a CSV "
                          "jobs file (is it binary, or a device?)") from None
    except csv.Error as exc:
        raise HeaderError(f"{source}: line 1: unreadable header: {exc}") from None
    if lines.eof and len(lines.record) > 1:
        raise HeaderError(f"{source}: line 1: a quote in the header is never closed")
    text = "".join(header)
    if "\x00" in text or undecodable(text):
        raise HeaderError(f"{source}: line 1: the header is not UTF-8 text: save the file as "
                          "UTF-8 CSV (is it UTF-16, a spreadsheet or compressed?)")
    columns: ColumnMap = resolve(header, overrides, source)
    records = _records(lines, reader, delimiter, len(lines.record) + 1, trust_last_line)
    return _rows(records, columns, header), frozenset(columns.positions)


Record = tuple[int, list[str] | None, Problem | None]  # first line, cells (if read), the problem


def _records(lines: _Lines, reader: Any, delimiter: str, line: int, trust_last_line: bool
             ) -> Iterator[Record]:
    """Each record. A stack of readers: the lines swallowed by a broken record are read again by
    a reader of their own, before the outer one goes on."""
    stack = [(lines, reader)]
    next_line = [line]
    while stack:
        lines, reader = stack[-1]
        line = next_line[-1]
        lines.record = []
        problem = None
        try:
            cells: list[str] | None = next(reader)
        except StopIteration:
            stack.pop()
            next_line.pop()
            continue
        except _LineTooLong:
            cells, problem = None, Problem(
                None, "line_too_long", f"longer than {MAX_LINE:,} characters: not a jobs row")
        except csv.Error as exc:
            cells, problem = None, _problem(exc)
        span = len(lines.record)
        next_line[-1] = line + span
        if cells is not None and lines.eof and span > 1:  # the file ended inside quotes
            cells, problem = None, Problem(
                None, "unterminated_quote",
                f"a quote opened in this row is never closed (lines {line}-{line + span - 1} "
                "would be one field); the lines after this one are read on their own")
        elif cells is not None and lines.unterminated and not trust_last_line:
            problem = Problem(None, "truncated_row",
                              "the input ended in the middle of this line (no line end): it may "
                              "be cut off, so it is not sent")
        yield line, cells, problem
        if cells is None and span > 1:
            swallowed = _Lines.again(lines.record[1:])
            stack.append((swallowed, csv.reader(swallowed, delimiter=delimiter)))
            next_line.append(line + 1)


def _problem(exc: csv.Error) -> Problem:
    if "field larger than field limit" in str(exc):
        return Problem(None, "line_too_long",
                       f"a field is longer than {FIELD_SIZE_LIMIT:,} characters: not a jobs row")
    return Problem(None, "unreadable_row", str(exc))


def _value(cell: str) -> str | None:
    """An empty cell is a value not given; a quoted one was written for a spreadsheet."""
    return (from_spreadsheet(cell) if cell[0] == "'" else cell) if cell else None


def _rows(records: Iterator[Record], columns: ColumnMap, header: list[str]) -> Iterator[RawRow | Rejection]:
    width = len(header)
    normalised_header = [h.strip().lower() for h in header]
    for line, row, problem in records:
        if row is None:
            yield Rejection(line, {}, [problem] if problem else [])
            continue
        if not any(cell.strip() for cell in row):
            continue  # blank line
        fields = {field: _value(row[i]) if i < len(row) else None for field, i in columns.positions.items()}
        for field in columns.empty_is_known:
            if fields[field] is None and columns.positions[field] < len(row):
                fields[field] = ""
        if problem is not None:
            yield Rejection(line, printable(fields), [problem])
            continue
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
