"""A JSON array of objects, as `openstack volume snapshot list -f json` writes it, streamed: one
object is decoded at a time from a sliding buffer, so a large export holds one row in memory.

A row's `line` is its element's position in the array (1 = the first): a compact array holds
every element on one physical line, and a row must be told apart from the others (resume, the
report). Messages about a broken array also name the physical line."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TextIO

from ..jobs import Problem, RawRow, Rejection
from .columns import ColumnMap
from .jsonl_source import DECODER, MAX_LINE, object_row

CHUNK = 1 << 16
_NOT_SPACE = re.compile(r"\S")


class _Text:
    """The unread part of a text stream, and the line its first character is on."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.buf = ""
        self.pos = 0
        self.line = 1
        self.eof = False

    def fill(self) -> bool:
        """Reads one more chunk, dropping what was consumed; False at the end of the stream."""
        chunk = "" if self.eof else self.stream.read(CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0
        return True

    def advance(self, to: int) -> None:
        self.line += self.buf.count("\n", self.pos, to)
        self.pos = to

    def next_char(self) -> str | None:
        """The next character that is not white space (not consumed); None at the end."""
        while True:
            found = _NOT_SPACE.search(self.buf, self.pos)
            if found:
                self.advance(found.start())
                return self.buf[self.pos]
            self.advance(len(self.buf))
            if not self.fill():
                return None


def read_json_array(stream: TextIO, source: str, overrides: dict[str, str]) -> Iterator[RawRow | Rejection]:
    """Rows of `[{...}, {...}]`. A syntax error ends the array (nothing after it can be located):
    it is rejected as the next element, naming the physical line and the reason."""
    text = _Text(stream)
    maps: dict[tuple[str, ...], ColumnMap | str] = {}
    element = 0
    if text.next_char() != "[":
        yield _broken(1, text.line, "expected a JSON array")
        return
    text.advance(text.pos + 1)
    if text.next_char() == "]":
        return
    while True:
        element += 1
        if text.next_char() is None:
            yield _broken(element, text.line, "the array ends before its closing ']' (a cut-off file?)")
            return
        while True:
            try:
                obj, end = DECODER.raw_decode(text.buf, text.pos)
                if end < len(text.buf) or text.eof:
                    break  # a value that ends at the buffer's end may go on in the next chunk
            except RecursionError:  # its end cannot be found: nothing after it can be located
                yield _broken(element, text.line, "nested too deeply to be a jobs row")
                return
            except json.JSONDecodeError as exc:
                if len(text.buf) - text.pos > MAX_LINE:
                    yield _broken(element, text.line, f"longer than {MAX_LINE} characters")
                    return
                if text.eof:
                    where = text.line + text.buf.count("\n", text.pos, exc.pos)
                    yield _broken(element, where, f"not valid JSON: {exc.msg}")
                    return
            text.fill()
        text.advance(end)
        yield object_row(obj, element, maps, overrides, source)
        after = text.next_char()
        if after == ",":
            text.advance(text.pos + 1)
        elif after == "]":
            text.advance(text.pos + 1)
            if text.next_char() is not None:
                yield _broken(element + 1, text.line, "text after the end of the JSON array")
            return
        else:
            yield _broken(element + 1, text.line, "expected ',' or ']' after an array element"
                          if after else "the array ends before its closing ']' (a cut-off file?)")
            return


def _broken(element: int, line: int, message: str) -> Rejection:
    return Rejection(element, {}, [Problem(None, "invalid_json", f"at line {line}: {message}")])
