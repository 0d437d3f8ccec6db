"""What an error answer means: its code and message from any shape the API family sends, and
whether it is worth retrying. Never assume a body is JSON: proxies answer with HTML or nothing."""

from __future__ import annotations

import email.utils
import functools
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urljoin, urlsplit, urlunsplit

from ..quota import MAX_RATE, MAX_WINDOW, UNITS, Quota
from ..redaction import SECRETS

# 408/429 and 5xx gateway answers are transient; Cinder answers 413 for its own rate limits.
TRANSIENT_STATUSES = frozenset({408, 413, 429, 500, 502, 503, 504})
MAX_MESSAGE = 500
# The longest wait a server may ask for (Retry-After), in seconds. Huawei's quotas count per
# second or per minute, so an honest value is far below; a larger one (31 years, `inf`, a date in
# 9999) must not stall anything. The retry loop clamps further, to the job's deadline.
MAX_RETRY_AFTER = 3600.0
_TITLE_RE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_TAG_RE = re.compile(r"<[^>]+>")


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    code: str
    message: str
    request_id: str | None = None
    quota: Quota | None = None  # the limit a 429 states (`limit:600,time:1 minute`)


# The shapes in which gateways state the quota a 429 hit: (pattern, how to read a match). Each
# reader answers None when the numbers mean nothing. Add a shape here, with its test.
_N = r"(\d+(?:\.\d+)?)"
_UNIT = r"(second|sec|minute|min|hour|hr|day)s?\b"


def _limit_per(limit: str, count: str | None, unit: str) -> Quota | None:
    return _quota(float(limit), float(count or 1) * UNITS[unit.lower()])


QUOTA_SHAPES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], Quota | None]]] = [
    # Huawei API gateway, APIGW.0308: "policy user over ratelimit,limit:600,time:1 minute"
    (re.compile(rf"\blimit\s*:\s*{_N}\s*,\s*time\s*:\s*{_N}?\s*{_UNIT}", re.I),
     lambda m: _limit_per(m[1], m[2], m[3])),
    # OpenStack's rate-limit middleware (nova, older cinder): "Only 10 PUT request(s) can be made
    # to "*" every minute."
    (re.compile(rf"\bonly\s+{_N}\s+\w+\s+request\(s\)\s+can\s+be\s+made\b.*?\bevery\s+{_N}?\s*{_UNIT}",
                re.I | re.S),
     lambda m: _limit_per(m[1], m[2], m[3])),
    # Plain words: "rate limit exceeded: 100 requests per second", "600 requests / 1 minute"
    (re.compile(rf"\b{_N}\s+requests?\s*(?:per|/|every|each)\s*{_N}?\s*{_UNIT}", re.I),
     lambda m: _limit_per(m[1], m[2], m[3])),
]


def stated_quota(message: str) -> Quota | None:
    """The quota a throttling answer's message states, if it states one that makes sense."""
    for pattern, read in QUOTA_SHAPES:
        match = pattern.search(message)
        if match is not None:
            return read(match)
    return None


def _quota(limit: float, window: float) -> Quota | None:
    """Zero or a window of nothing is garbage: ignore it. Huge numbers are clamped (a window to a
    day, a limit to MAX_RATE a second): as a ceiling they are harmless."""
    if not (math.isfinite(window) and window > 0 and limit > 0) or math.isnan(limit):
        return None
    window = min(window, MAX_WINDOW)
    return Quota(min(limit, MAX_RATE * window), window)


def describe_error(status: int, body: bytes) -> ErrorInfo:
    """The error an answer describes. A server may quote the request back (a token, a password):
    secrets are masked before the message is clipped, which could otherwise cut one in two."""
    error = _describe(status, SECRETS.redact(body.decode("utf-8", "replace")))
    request_id = error.request_id and _clip(SECRETS.redact(error.request_id), 200)
    # Read before the clip; only a throttling answer (Cinder's is 413) states a quota.
    quota = stated_quota(error.message[:2000]) if status in (413, 429) else None
    return ErrorInfo(_clip(SECRETS.redact(error.code), 100), _clip(SECRETS.redact(error.message)),
                     request_id, quota)


def _describe(status: int, body: str) -> ErrorInfo:
    data = None
    if body.lstrip()[:1] in ("{", "["):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
    if isinstance(data, dict):
        # Huawei API gateway: {"error_code": "APIGW.0308", "error_msg": ..., "request_id": ...}
        if "error_code" in data or "error_msg" in data:
            return ErrorInfo(
                str(data.get("error_code") or f"http_{status}"),
                str(data.get("error_msg") or ""),
                _str_or_none(data.get("request_id")),
            )
        # OpenStack: {"itemNotFound": {"code": 404, "message": ...}} or {"error": {...}}
        if len(data) == 1:
            kind, inner = next(iter(data.items()))
            if isinstance(inner, dict):
                code = inner.get("code")
                if kind == "error":
                    label = str(code) if isinstance(code, str) and code else f"http_{status}"
                else:
                    label = kind
                return ErrorInfo(label, str(inner.get("message") or inner.get("title") or ""))
        message = data.get("message") or data.get("msg") or data.get("detail")
        if message:
            return ErrorInfo(f"http_{status}", str(message))
    return ErrorInfo(f"http_{status}", _text_message(status, body))


def _text_message(status: int, body: str) -> str:
    if not body.strip():
        try:
            return HTTPStatus(status).phrase + " (empty body)"
        except ValueError:
            return "empty body"
    title = _TITLE_RE.search(body)
    text = _TAG_RE.sub(" ", title.group(1) if title else body)
    return " ".join(text.split())


def _clip(text: str, limit: int = MAX_MESSAGE) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _str_or_none(value: object) -> str | None:
    return str(value) if value else None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header, in either form (delta-seconds or HTTP date),
    between 0 and MAX_RETRY_AFTER; None when there is none or it means nothing (`nan`)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


@functools.lru_cache(maxsize=4)
def server_second(value: str | None) -> int | None:
    """The second of the server's clock a `Date` header names (one parse a second: the header
    changes once a second); None when there is none or it names no date. Only compared with
    other answers' (which of the server's seconds an answer came in), never with our clock."""
    if not value or len(value) > 64:
        return None
    try:
        return int(email.utils.parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def is_redirect(status: int) -> bool:
    return 300 <= status < 400


def redirect_error(url: str, location: str | None) -> ErrorInfo:
    """A redirect is never followed (it would carry the credentials to wherever it points): it
    is a failure that says where it pointed, without the query string (which may hold a
    signature or a token)."""
    where = _shown_location(url, location) if location else "nowhere (no Location)"
    return ErrorInfo("redirect", f"redirected to {where}; redirects are never followed "
                                 "(the credentials would go along): give the final URL")


def _shown_location(url: str, location: str) -> str:
    try:
        parts = urlsplit(urljoin(url, location))
        shown = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
    except ValueError:
        shown = re.split(r"[?#]", location, maxsplit=1)[0]
    return _clip(SECRETS.redact(shown), 300)
