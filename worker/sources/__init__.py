"""Where jobs come from: CSV, TSV, JSON Lines or a JSON array, an .xlsx workbook, or stdin. Every
source streams its rows."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..jobs import RawRow, Rejection
from .columns import HeaderError, parse_overrides
from .csv_source import read_csv
from .files import is_regular, is_rereadable, same_file
from .json_source import read_json_array
from .jsonl_source import read_jsonl
from .xlsx_source import read_xlsx

# json and jsonl are read alike: a JSON array when the input starts with '[', else JSON Lines.
FORMATS = ("csv", "tsv", "jsonl", "json", "xlsx")
_BY_EXTENSION = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                 ".json": "json", ".xlsx": "xlsx"}

__all__ = ["HeaderError", "InputSpec", "Rows", "count_rows", "detect_format", "is_rereadable",
           "open_rows", "parse_overrides", "same_file"]


@dataclass(frozen=True)
class InputSpec:
    path: str  # a file path, or "-" for stdin
    format: str | None = None
    columns: tuple[str, ...] = ()
    delimiter: str | None = None
    sheet: str | None = None  # of an .xlsx workbook; default: the first

    @property
    def display_name(self) -> str:
        return "<stdin>" if self.path == "-" else self.path


def detect_format(spec: InputSpec) -> str:
    if spec.format:
        if spec.format not in FORMATS:
            raise HeaderError(f"--format {spec.format!r}: choose one of {', '.join(FORMATS)}")
        return spec.format
    if spec.path == "-":
        return "csv"
    return _BY_EXTENSION.get(Path(spec.path).suffix.lower(), "csv")


class Rows:
    """The rows of one input, streamed; `fields` are the job fields its header maps (None when
    each row names its own, as in JSON Lines). Close it, or use it as a context manager."""

    def __init__(self, rows: Iterator[RawRow | Rejection], fields: frozenset[str] | None,
                 close: Callable[[], object]) -> None:
        self._rows = rows
        self.fields = fields
        self.close = close

    def __iter__(self) -> Iterator[RawRow | Rejection]:
        return self._rows

    def __enter__(self) -> Rows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_rows(spec: InputSpec) -> Rows:
    """Opens the input and reads its header. Raises HeaderError (the whole input is unusable)
    or OSError."""
    fmt = detect_format(spec)
    overrides = parse_overrides(list(spec.columns))
    if fmt == "xlsx":
        if spec.path == "-":
            raise HeaderError("an .xlsx workbook cannot be read from stdin: give its path")
        rows, fields, close_workbook = read_xlsx(spec.path, spec.display_name, overrides, spec.sheet)
        return Rows(rows, fields, close_workbook)
    if spec.path == "-" and sys.stdin is None:  # started with `<&-`
        raise HeaderError("<stdin>: stdin is closed: give the jobs file's path, or pipe the jobs in")
    binary = sys.stdin.buffer if spec.path == "-" else open(spec.path, "rb")  # noqa: SIM115
    # A stream's last line may be cut off (its producer died); a regular file's is trusted.
    whole = is_regular(binary)
    # utf-8-sig drops a leading BOM; surrogateescape keeps undecodable bytes so that the row
    # holding them is rejected on its own instead of the whole file failing to decode.
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
    close = text.detach if spec.path == "-" else text.close
    try:
        if fmt in ("jsonl", "json"):
            if _not_utf8(binary):
                raise HeaderError(f"{spec.display_name}: line 1 is not UTF-8 text: save the file as "
                                  "UTF-8 (is it UTF-16, binary or compressed?)")
            if _starts_array(binary):
                return Rows(read_json_array(text, spec.display_name, overrides), None, close)
            return Rows(read_jsonl(text, spec.display_name, overrides, whole), None, close)
        delimiter = spec.delimiter or ("\t" if fmt == "tsv" else ",")
        rows, fields = read_csv(text, spec.display_name, overrides, delimiter, whole)
        return Rows(rows, fields, close)
    except BaseException:
        close()
        raise


def _not_utf8(binary: IO[bytes]) -> bool:
    """Whether the input starts as UTF-16 or UTF-32 (a BOM, or NUL bytes in the first line,
    which JSON text never holds), read without consuming it."""
    peek = getattr(binary, "peek", None)
    head = peek(4096) if peek is not None else b""
    return head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head.split(b"\n", 1)[0]


def _starts_array(binary: IO[bytes]) -> bool:
    """Whether the input's first character (past a BOM and white space) is '[', read without
    consuming it. Leading white space longer than the peek (or a stream that cannot peek) is
    taken as JSON Lines."""
    peek = getattr(binary, "peek", None)
    return peek is not None and peek(4096).removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"[")


def count_rows(spec: InputSpec) -> int | None:
    """About how many rows a regular file holds (physical lines, less the header), for progress
    and ETA; None for stdin or a pipe, a workbook or a JSON array (lines are not rows there)."""
    fmt = detect_format(spec)
    lines = None if fmt == "xlsx" else count_lines(spec.path)
    if lines is None:
        return None
    if fmt in ("jsonl", "json"):
        with open(spec.path, "rb") as f:
            return None if _starts_array(f) else lines
    return max(0, lines - 1)


def count_lines(path: str) -> int | None:
    """Physical lines of a regular file, for progress and ETA; None for stdin or a pipe."""
    if path == "-" or not os.path.isfile(path):
        return None
    count = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
    return count
