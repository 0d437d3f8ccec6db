"""Text decoded with surrogateescape keeps the bytes that are not UTF-8 (so one bad row does not
fail the whole file); they must be found before a value goes anywhere else."""

from __future__ import annotations

from typing import Any

from ..jobs import Problem, Rejection


def undecodable(value: str) -> str | None:
    """What is wrong with a value holding bytes that are not UTF-8, or None when it is text."""
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        byte = ord(value[exc.start]) - 0xDC00
        if not 0x80 <= byte <= 0xFF:
            return "holds a character that cannot be encoded"
        return (f"byte 0x{byte:02X} (character {exc.start + 1}) is not UTF-8: the file looks "
                "Latin-1 or Windows-1252; save it as UTF-8")
    return None


def undecodable_rejection(line: int, fields: dict[str, Any]) -> Rejection | None:
    """A row holding bytes that are not UTF-8, rejected with its values made printable."""
    for field, value in fields.items():
        if isinstance(value, str) and (problem := undecodable(value)):
            clean = {k: v.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
                     if isinstance(v, str) else v for k, v in fields.items()}
            return Rejection(line, clean, [Problem(field, "invalid_utf8", problem)])
    return None
