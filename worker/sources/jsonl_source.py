"""JSON Lines rows: one object a line, the same field names and aliases as the CSV header."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TextIO

from ..jobs import Problem, RawRow, Rejection
from .columns import ColumnMap, HeaderError, resolve
from .text import undecodable_rejection

MAX_LINE = 1 << 20


def read_jsonl(stream: TextIO, source: str, overrides: dict[str, str]) -> Iterator[RawRow | Rejection]:
    maps: dict[tuple[str, ...], ColumnMap | str] = {}  # key sets repeat: resolve each once
    line = 0
    while True:
        text = stream.readline(MAX_LINE)
        if not text:
            return
        line += 1
        if not text.endswith("\n") and len(text) >= MAX_LINE:
            while (rest := stream.readline(MAX_LINE)) and not rest.endswith("\n"):
                pass  # skip the remainder of an oversized line without holding it
            yield _reject(line, None, "line_too_long", f"longer than {MAX_LINE} characters")
            continue
        if not text.strip():
            continue
        text = text.lstrip("\ufeff")  # a BOM opening a line: files joined together
        try:
            obj = json.loads(text)
        except ValueError as exc:
            message = getattr(exc, "msg", str(exc)).removesuffix(" at")
            column = getattr(exc, "colno", None)
            yield _reject(line, None, "invalid_json",
                          f"not valid JSON: {message}" + (f" at column {column}" if column else ""))
            continue
        yield object_row(obj, line, maps, overrides, source)


def object_row(obj: object, line: int, maps: dict[tuple[str, ...], ColumnMap | str],
               overrides: dict[str, str], source: str) -> RawRow | Rejection:
    """One JSON object's row; `maps` caches the column map of each key set (they repeat)."""
    if not isinstance(obj, dict):
        return _reject(line, None, "invalid_json", f"expected a JSON object, got {type(obj).__name__}")
    keys = tuple(obj)
    columns = maps.get(keys)
    if columns is None:
        try:
            columns = resolve(list(keys), overrides, source)
        except HeaderError as exc:
            columns = str(exc).split(": line 1: ", 1)[-1]
        maps[keys] = columns
    if isinstance(columns, str):
        return _reject(line, None, "missing_field", columns)
    fields = {field: obj[keys[i]] for field, i in columns.positions.items()}
    return undecodable_rejection(line, fields) or RawRow(line, fields)


def _reject(line: int, field: str | None, code: str, message: str) -> Rejection:
    return Rejection(line, {}, [Problem(field, code, message)])
