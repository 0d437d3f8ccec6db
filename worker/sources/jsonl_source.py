"""JSON Lines rows: one object a line, the same field names and aliases as the CSV header.

What no row survives is a rejection of its line, and the other lines go on: a line over
MAX_LINE characters (skipped without being held), JSON nested too deeply for the parser, a key
given twice (which value would count?), a last line cut off without its line end on a stream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

from ..jobs import Problem, RawRow, Rejection
from .columns import ColumnMap, HeaderError, resolve
from .text import printable_text, undecodable_rejection

MAX_LINE = 1 << 20
_LINE_ENDS = ("\n", "\r")


class _Duplicated(dict[str, Any]):
    """A decoded JSON object that was given a key twice (the last value kept, as json does)."""

    duplicate = ""


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            break
        seen.add(key)
    duplicated = _Duplicated(obj)
    duplicated.duplicate = key
    return duplicated


DECODER = json.JSONDecoder(object_pairs_hook=_object)


def read_jsonl(stream: TextIO, source: str, overrides: dict[str, str], trust_last_line: bool = True
               ) -> Iterator[RawRow | Rejection]:
    """`trust_last_line`: False for a stream (stdin, a pipe), whose last line without a line end
    may be cut off: it is rejected unless it is a whole JSON value."""
    maps: dict[tuple[str, ...], ColumnMap | str] = {}  # key sets repeat: resolve each once
    line = 0
    while True:
        text = stream.readline(MAX_LINE)
        if not text:
            return
        line += 1
        ended = text.endswith(_LINE_ENDS)
        if not ended and len(text) >= MAX_LINE:
            while (rest := stream.readline(MAX_LINE)) and not rest.endswith(_LINE_ENDS):
                pass  # skip the remainder of an oversized line without holding it
            yield _reject(line, None, "line_too_long", f"longer than {MAX_LINE} characters")
            continue
        if not text.strip():
            continue
        text = text.lstrip("\ufeff")  # a BOM opening a line: files joined together
        try:
            obj = DECODER.decode(text)
        except ValueError as exc:
            if not ended and not trust_last_line:
                yield _reject(line, None, "truncated_row", "the input ended in the middle of this "
                              "line (no line end, and not whole JSON): it is not sent")
                continue
            message = getattr(exc, "msg", str(exc)).removesuffix(" at")
            column = getattr(exc, "colno", None)
            yield _reject(line, None, "invalid_json",
                          f"not valid JSON: {message}" + (f" at column {column}" if column else ""))
            continue
        except RecursionError:
            yield _reject(line, None, "invalid_json", "nested too deeply to be a jobs row")
            continue
        yield object_row(obj, line, maps, overrides, source)


def object_row(obj: object, line: int, maps: dict[tuple[str, ...], ColumnMap | str],
               overrides: dict[str, str], source: str) -> RawRow | Rejection:
    """One JSON object's row; `maps` caches the column map of each key set (they repeat)."""
    if not isinstance(obj, dict):
        return _reject(line, None, "invalid_json", f"expected a JSON object, got {type(obj).__name__}")
    if isinstance(obj, _Duplicated):
        return _reject(line, printable_text(obj.duplicate), "duplicate_key",
                       "this key is given twice in the object: which value is meant?")
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
