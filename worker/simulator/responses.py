"""Answers in the shapes the real services send: Cinder faults, the Huawei API gateway, proxies."""

from __future__ import annotations

import email.utils
import json
import math
import os
import time
import uuid
from http import HTTPStatus
from typing import Any

from aiohttp import web

REQUEST_ID_HEADER = "X-Openstack-Request-Id"
_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def request_id() -> str:
    """req-<uuid4>, Cinder's style; formatted by hand because uuid.uuid4() is slow on the hot path."""
    h = os.urandom(16).hex()
    return f"req-{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def encode(payload: Any) -> bytes:
    return _dumps(payload).encode("ascii")


def json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    # A plain header dict is several times cheaper than Response(content_type=...).
    hdrs = {"Content-Type": "application/json", REQUEST_ID_HEADER: request_id()}
    if headers:
        hdrs.update(headers)
    return web.Response(status=status, body=body, headers=hdrs)


def cinder_error(status: int, kind: str, message: str) -> bytes:
    """{"itemNotFound": {"code": 404, "message": ...}} and friends."""
    return encode({kind: {"code": status, "message": message}})


def bad_request(message: str) -> tuple[int, bytes]:
    return 400, cinder_error(400, "badRequest", message)


def not_found(message: str = "The resource could not be found.") -> tuple[int, bytes]:
    return 404, cinder_error(404, "itemNotFound", message)


UNAUTHORIZED = encode(
    {
        "error": {
            "code": 401,
            "message": "The request you have made requires authentication.",
            "title": "Unauthorized",
        }
    }
)


def gateway_429(limit: int | str | None, retry_after: str | None = None, period: str = "1 second") -> web.Response:
    """Huawei API gateway throttling (APIGW.0308): the limit and its window stated in the message
    (`limit:600,time:1 minute`) unless `limit` is None; Retry-After only when asked for."""
    message = "The throttling threshold has been reached"
    if limit is not None:
        message += f": policy user over ratelimit,limit:{limit},time:{period}"
    body = encode({"error_code": "APIGW.0308", "error_msg": message, "request_id": uuid.uuid4().hex})
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return json_response(429, body, headers)


def retry_date(seconds_ahead: int = 1) -> str:
    # HTTP dates have whole-second resolution: round up so the date is never in the past.
    return email.utils.formatdate(math.ceil(time.time()) + seconds_ahead, usegmt=True)


_HTML = (
    "<html>\r\n<head><title>{code} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_CINDER_FAULTS = {
    500: (
        "computeFault",
        "The server has either erred or is incapable of performing the requested operation.",
    ),
    503: ("serviceUnavailable", "The service is unavailable at this time."),
    403: ("forbidden", "Policy doesn't allow volume:update_snapshot to be performed."),
    413: ("overLimit", "This request was rate-limited."),
}


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Error"


def status_fault(kind: str) -> web.Response:
    """The answer for a status-code fault kind ("500", "502", "429", "418", ...) or "empty"."""
    if kind == "empty":
        return web.Response(status=503, body=b"", headers={REQUEST_ID_HEADER: request_id()})
    code = int(kind)
    if code == 429:  # an injected fault, not a quota: it states no limit (a client would slow to it)
        return gateway_429(None)
    if code in (502, 504):  # what a proxy in front of the service sends
        html = _HTML.format(code=code, phrase=_phrase(code)).encode()
        return web.Response(
            status=code, body=html, content_type="text/html", headers={REQUEST_ID_HEADER: request_id()}
        )
    if code in _CINDER_FAULTS:
        kind_name, message = _CINDER_FAULTS[code]
        return json_response(code, cinder_error(code, kind_name, message))
    return json_response(code, encode({"error": {"code": code, "message": _phrase(code)}}))


def fault_response(kind: str) -> web.Response:
    if kind == "429-retry-after":
        return gateway_429(None, "1")
    if kind == "429-retry-date":
        return gateway_429(None, retry_date(1))
    return status_fault(kind)


def raw_http(status: int, body: bytes, content_length: int) -> bytes:
    """A response head written by hand, for faults that must lie about Content-Length."""
    head = (
        f"HTTP/1.1 {status} {_phrase(status)}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {content_length}\r\n"
        f"{REQUEST_ID_HEADER}: {request_id()}\r\n\r\n"
    )
    return head.encode("ascii") + body
