"""An .xlsx workbook, as cloud consoles export inventories, streamed with openpyxl's read-only
mode: rows are parsed one at a time from the sheet's XML (openpyxl keeps the workbook's table of
distinct cell texts in memory). A row's line is its row number in the sheet."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from datetime import date, datetime, time
from typing import Any

from ..jobs import RawRow, Rejection
from .columns import ColumnMap, HeaderError, resolve


def read_xlsx(path: str, source: str, overrides: dict[str, str], sheet: str | None = None
              ) -> tuple[Iterator[RawRow | Rejection], frozenset[str], Callable[[], None]]:
    """Opens the workbook and reads the header now (HeaderError); returns the rows, the job
    fields the header maps and the function that closes the workbook."""
    from openpyxl import load_workbook  # imported here: only workbooks need it

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise HeaderError(f"{source}: not a readable .xlsx workbook ({exc})") from None
    try:
        if sheet is None:
            worksheet = workbook.worksheets[0]
        elif sheet in workbook.sheetnames:
            worksheet = workbook[sheet]
        else:
            raise HeaderError(f"{source}: no sheet {sheet!r}; the sheets are "
                              + ", ".join(repr(name) for name in workbook.sheetnames))
        rows = enumerate(worksheet.iter_rows(values_only=True), start=1)
        for number, values in rows:  # the header is the first row that is not empty
            if any(_text(v) for v in values):
                header = [_text(v) or "" for v in values]
                columns = resolve(header, overrides, source, line=number)
                return _rows(rows, columns), frozenset(columns.positions), workbook.close
        raise HeaderError(f"{source}: the sheet {worksheet.title!r} is empty (expected a header row)")
    except BaseException:
        workbook.close()
        raise


def _rows(rows: Iterator[tuple[int, tuple[Any, ...]]], columns: ColumnMap) -> Iterator[RawRow | Rejection]:
    positions = columns.positions.items()
    for number, values in rows:
        cells = [_text(v) for v in values]
        if not any(cells):
            continue  # blank row
        yield RawRow(number, {field: cells[i] if i < len(cells) else None for field, i in positions})


def _text(value: Any) -> str | None:
    """A cell as the text a user sees; None for an empty cell (as an empty CSV cell)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores every number as a float: 12.0 is shown as 12
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return str(value)
