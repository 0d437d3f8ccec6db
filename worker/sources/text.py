"""Text decoded with surrogateescape keeps the bytes that are not UTF-8 (so one bad row does not
fail the whole file); they must be found before a value goes anywhere else. JSON can hold lone
surrogates too (an escaped "\\ud800"): they are no characters and cannot be written anywhere."""

from __future__ import annotations

import re
from typing import Any

from ..jobs import Problem, Rejection

_SURROGATE = re.compile("[\ud800-\udfff]")


def undecodable(value: str) -> str | None:
    """What is wrong with a value holding bytes that are not UTF-8, or None when it is text."""
    if value.isascii():
        return None
    found = _SURROGATE.search(value)
    if found is None:
        return None
    code = ord(found.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return (f"byte 0x{code - 0xDC00:02X} (character {found.start() + 1}) is not UTF-8: the file "
                "looks Latin-1 or Windows-1252; save it as UTF-8")
    return (f"holds \\u{code:04x} (character {found.start() + 1}), half of a UTF-16 surrogate pair: "
            "not a character")


def printable_text(value: str) -> str:
    """The value with what is not a character replaced by U+FFFD, fit for a report or a log."""
    return _SURROGATE.sub("\ufffd", value)


def printable(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: printable_text(v) if isinstance(v, str) else v for k, v in fields.items()}


def undecodable_rejection(line: int, fields: dict[str, Any]) -> Rejection | None:
    """A row holding bytes that are not UTF-8, rejected with its values made printable."""
    for field, value in fields.items():
        if isinstance(value, str) and (problem := undecodable(value)):
            return Rejection(line, printable(fields), [Problem(field, "invalid_utf8", problem)])
    return None
