"""CSV rows, streamed: quoted fields with commas, quotes and newlines; BOM; CRLF."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any, TextIO

from ..jobs import Problem, RawRow, Rejection
from .columns import ColumnMap, HeaderError, resolve

# Names are at most 255 bytes; a much longer field is a broken file, not data to hold in memory.
FIELD_SIZE_LIMIT = 1 << 20
csv.field_size_limit(FIELD_SIZE_LIMIT)


def read_csv(
    stream: TextIO, source: str, overrides: dict[str, str], delimiter: str = ","
) -> tuple[Iterator[RawRow | Rejection], frozenset[str]]:
    """Reads and checks the header now (HeaderError); returns the rows, streamed, and the job
    fields the header maps."""
    reader = csv.reader(stream, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise HeaderError(f"{source}: the file is empty (expected a header line)") from None
    except csv.Error as exc:
        raise HeaderError(f"{source}: line 1: unreadable header: {exc}") from None
    columns: ColumnMap = resolve(header, overrides, source)
    return _rows(reader, columns, len(header)), frozenset(columns.positions)


def _rows(reader: Any, columns: ColumnMap, width: int) -> Iterator[RawRow | Rejection]:
    previous_end = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Rejection(previous_end + 1, {}, [Problem(None, "unreadable_row", str(exc))])
            previous_end = reader.line_num
            continue
        line, previous_end = previous_end + 1, reader.line_num
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
        yield RawRow(line, fields)
