"""Where jobs come from: a CSV or JSON Lines file, or stdin. Every source streams its rows."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..jobs import RawRow, Rejection
from .columns import HeaderError, parse_overrides
from .csv_source import read_csv
from .jsonl_source import read_jsonl

FORMATS = ("csv", "tsv", "jsonl")
_BY_EXTENSION = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}

__all__ = ["HeaderError", "InputSpec", "Rows", "count_rows", "detect_format", "open_rows", "parse_overrides"]


@dataclass(frozen=True)
class InputSpec:
    path: str  # a file path, or "-" for stdin
    format: str | None = None
    columns: tuple[str, ...] = ()
    delimiter: str | None = None

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
                 close: Callable[[], None]) -> None:
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
    binary = sys.stdin.buffer if spec.path == "-" else open(spec.path, "rb")  # noqa: SIM115
    # utf-8-sig drops a leading BOM; surrogateescape keeps undecodable bytes so that the row
    # holding them is rejected on its own instead of the whole file failing to decode.
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
    close = text.detach if spec.path == "-" else text.close
    try:
        if fmt == "jsonl":
            return Rows(read_jsonl(text, spec.display_name, overrides), None, close)
        delimiter = spec.delimiter or ("\t" if fmt == "tsv" else ",")
        rows, fields = read_csv(text, spec.display_name, overrides, delimiter)
        return Rows(rows, fields, close)
    except BaseException:
        close()
        raise


def count_rows(spec: InputSpec) -> int | None:
    """About how many rows a regular file holds (physical lines, less the header), for progress
    and ETA; None for stdin or a pipe."""
    lines = count_lines(spec.path)
    if lines is None or detect_format(spec) == "jsonl":
        return lines
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
