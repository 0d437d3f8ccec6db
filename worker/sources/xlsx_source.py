"""An .xlsx workbook, as cloud consoles export inventories, streamed with openpyxl's read-only
mode: rows are parsed one at a time from the sheet's XML (openpyxl keeps the workbook's table of
distinct cell texts in memory). A row's line is its row number in the sheet.

A workbook is a zip archive, and a small one can unpack to gigabytes (a "zip bomb"): the sizes
its directory declares are checked before openpyxl reads anything, and zipfile never unpacks a
part past its declared size."""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Callable, Iterator
from datetime import date, datetime, time
from typing import IO, Any

from ..jobs import Problem, RawRow, Rejection
from .columns import ColumnMap, HeaderError, resolve

# A workbook of a million jobs rows unpacks to a few hundred MB; save a larger job as CSV,
# which is streamed without bound. The parts other than sheets are held whole in memory.
MAX_UNPACKED = 512 << 20
MAX_HELD_PART = 64 << 20
_SHEETS = "xl/worksheets/"
# What a damaged archive or sheet raises once reading has begun (ParseError is a SyntaxError).
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, SyntaxError, KeyError, ValueError)


def read_xlsx(path: str, source: str, overrides: dict[str, str], sheet: str | None = None
              ) -> tuple[Iterator[RawRow | Rejection], frozenset[str], Callable[[], None]]:
    """Opens the workbook and reads the header now (HeaderError); returns the rows, the job
    fields the header maps and the function that closes the workbook."""
    from openpyxl import load_workbook  # only workbooks need it

    file = open(path, "rb")  # noqa: SIM115 (closed with the workbook)
    workbook: Any = None  # set below, once the archive passed its checks

    def close() -> None:
        if workbook is not None:
            workbook.close()
        file.close()

    try:
        _check_sizes(file, source)
        # A file object, not the path: openpyxl refuses a path whose extension is not .xlsx.
        workbook = load_workbook(file, read_only=True, data_only=True)
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
                return _rows(rows, columns, number), frozenset(columns.positions), close
        raise HeaderError(f"{source}: the sheet {worksheet.title!r} is empty (expected a header row)")
    except BaseException as exc:
        close()
        if isinstance(exc, _DAMAGED) and not isinstance(exc, HeaderError):
            raise HeaderError(f"{source}: not a readable .xlsx workbook ({exc})") from None
        raise


def _check_sizes(file: IO[bytes], source: str) -> None:
    """Refuses (HeaderError) a workbook that would unpack past the limits. Raises
    zipfile.BadZipFile for a file that is not a zip archive (or cannot seek, as a pipe)."""
    with zipfile.ZipFile(file) as archive:
        parts = archive.infolist()
    held = [p for p in parts if not p.filename.startswith(_SHEETS)]
    largest = max(held, key=lambda p: p.file_size, default=None)
    for what, size, limit in (
        ("the workbook", sum(p.file_size for p in parts), MAX_UNPACKED),
        (largest.filename if largest else "", largest.file_size if largest else 0, MAX_HELD_PART),
    ):
        if size > limit:
            raise HeaderError(f"{source}: {what} unpacks to {size / (1 << 20):,.0f} MiB, over the "
                              f"limit of {limit >> 20} MiB: a zip bomb, or a job to save as CSV")
    file.seek(0)


def _rows(rows: Iterator[tuple[int, tuple[Any, ...]]], columns: ColumnMap, number: int
          ) -> Iterator[RawRow | Rejection]:
    positions = columns.positions.items()
    try:
        for number, values in rows:
            cells = [_text(v) for v in values]
            if not any(cells):
                continue  # blank row
            yield RawRow(number, {field: cells[i] if i < len(cells) else None for field, i in positions})
    except _DAMAGED as exc:  # nothing after the damage can be read
        yield Rejection(number + 1, {}, [Problem(None, "unreadable_row",
                                                 f"the workbook is damaged from this row on ({exc})")])


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
