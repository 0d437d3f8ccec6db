"""The request log: one record per API request, secrets redacted."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDictProxy

SECRET_HEADERS = frozenset({"x-auth-token", "x-security-token"})
REDACTED = "***"
MALFORMED = object()  # a body that is not JSON


@dataclass(slots=True)
class RequestRecord:
    t_mono: float  # time.monotonic() at arrival
    t_wall: float  # time.time() at arrival
    method: str
    path: str
    project_id: str | None
    snapshot_id: str | None
    family: str | None  # "v2", "evs", "cinder-v3"; None for a path no family serves
    body: Any  # parsed JSON, the raw text when not JSON, None without a body
    status: int | None  # answered status; None while in flight or when the connection was dropped
    fault: str | None  # fault kind, "throttled" for the rate limit, None for a normal answer
    headers: dict[str, str]
    query: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def redact_headers(headers: CIMultiDictProxy[str]) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        low = name.lower()
        out[low] = REDACTED if low in SECRET_HEADERS else value
    return out


def parse_body(raw: bytes) -> Any:
    """The JSON document, None for an empty body, MALFORMED otherwise."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:  # includes UnicodeDecodeError
        return MALFORMED


def body_for_record(raw: bytes | None, parsed: Any) -> Any:
    if parsed is MALFORMED:
        return raw.decode("utf-8", "replace") if raw is not None else None
    return parsed
