"""Every secret the process knows, so that no output can carry one: logs, reports and error
messages all pass through `redact`.

A server may quote a secret back in another form than it was sent, so each is masked in every
form it can take there: as is, JSON-escaped, HTML-escaped, URL-encoded (quote and quote_plus,
either case of hex), and inside base64 (`user:password` in a Basic header), whatever comes
before it.
"""

from __future__ import annotations

import base64
import html
import json
import re
import sys
from typing import Any, TextIO, cast
from urllib.parse import quote, quote_plus

MASK = "***"
_MIN_LENGTH = 4  # shorter values would mask ordinary words
_MIN_BASE64 = 8  # base64 cores shorter than this would mask ordinary text
_HEX_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def encoded_forms(value: str) -> set[str]:
    """The forms `value` can take in a server's answer."""
    forms = {value, html.escape(value)}
    for escaped in (json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]):
        forms |= {escaped, escaped.replace("/", "\\/")}  # some encoders escape '/' too
    for encoded in (quote(value), quote(value, safe=""), quote_plus(value)):
        forms |= {encoded, _HEX_ESCAPE.sub(lambda m: m.group().lower(), encoded)}
    return forms | base64_cores(value.encode())


def base64_cores(secret: bytes) -> set[str]:
    """What base64 of any text holding `secret` always contains: base64 encodes 3 bytes as 4
    characters, so for each of the 3 offsets the secret can start at, the characters made of its
    bytes alone (the groups at either end mix in bytes around it)."""
    cores = set()
    for offset in range(3):
        skip = (3 - offset) % 3  # bytes of the secret in a group shared with what comes before
        whole = (len(secret) - skip) // 3 * 3
        if whole <= 0:
            continue
        core = base64.b64encode(secret[skip:skip + whole]).decode()
        if len(core) >= _MIN_BASE64:
            cores |= {core, core.replace("+", "-").replace("/", "_")}  # and base64url
    return cores


class SecretRegistry:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str | None) -> None:
        if value and len(value) >= _MIN_LENGTH and value not in self._values:
            self._values.add(value)
            self._forms |= encoded_forms(value)
            # Longest first, so a secret that contains another is masked whole.
            ordered = sorted(self._forms, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def redact(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)


SECRETS = SecretRegistry()


class RedactedOutput:
    """A text stream that masks every known secret in what is written to it, so that no line the
    program prints can carry one, whoever prints it (`redact_output`)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(SECRETS.redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def redact_output() -> None:
    """Every line printed from now on passes through SECRETS; a character the terminal's encoding
    cannot show is escaped rather than a traceback (LANG=C, PYTHONIOENCODING=ascii)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is None or isinstance(stream, RedactedOutput):
            continue
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
        # The proxy is a TextIO in all but name: it forwards everything else to the stream.
        setattr(sys, name, cast(TextIO, RedactedOutput(stream)))
