"""Huawei Cloud AK/SK request signing (`SDK-HMAC-SHA256`), byte for byte the algorithm of
huaweicloudsdkcore's Signer:

    canonical request = METHOD \\n canonical URI (each path segment decoded, then encoded with
                        only unreserved characters and '~' left, ending in '/') \\n sorted query
                        \\n "name:value\\n" for every signed header \\n signed header names \\n
                        SHA-256 of the body (hex)
    string to sign    = SDK-HMAC-SHA256 \\n X-Sdk-Date \\n SHA-256 of the canonical request (hex)
    Authorization     = SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=HMAC(SK, string)

Every header sent is signed (except names holding '_', as the SDK does), Host and X-Sdk-Date
included. The simulator verifies with the same functions; tests/test_aksk.py proves them against
the SDK itself.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from .auth import Stopper

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
CONTENT_HASH_HEADER = "X-Sdk-Content-Sha256"
JSON = "application/json"  # what worker.api.client sends bodies as


@dataclass(frozen=True)
class AccessKey:
    access_key: str
    secret_key: str
    project_id: str | None = None  # sent as X-Project-Id
    security_token: str | None = None  # temporary credentials: sent as X-Security-Token


def _encode(text: str) -> str:
    return quote(text, safe="~")


def canonical_uri(path: str) -> str:
    uri = "/".join(_encode(segment) for segment in unquote(path or "/").split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    # Sorted on the decoded (key, value) pairs, then encoded, as the SDK does.
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(pairs))


def query_pairs(query: str) -> list[tuple[str, str]]:
    return parse_qsl(query, keep_blank_values=True)


def signed_header_names(headers: dict[str, str]) -> list[str]:
    return sorted(name.lower() for name in headers if "_" not in name)


def canonical_request(method: str, path: str, query: list[tuple[str, str]],
                      headers: dict[str, str], signed: list[str], body: bytes) -> str:
    """`headers` holds at least every name of `signed` (any case)."""
    values = {name.lower(): str(value).strip() for name, value in headers.items()}
    header_block = "".join(f"{name}:{values[name]}\n" for name in signed)
    if not body:
        payload = EMPTY_SHA256
    else:
        payload = values.get(CONTENT_HASH_HEADER.lower()) or hashlib.sha256(body).hexdigest()
    return "\n".join((method.upper(), canonical_uri(path), canonical_query(query), header_block,
                      ";".join(signed), payload))


def signature(secret_key: str, date: str, canonical: str) -> str:
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{date}\n{digest}"
    return hmac.new(secret_key.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def sign(key: AccessKey, method: str, url: str, headers: dict[str, str], body: bytes,
         now: float | None = None) -> dict[str, str]:
    """The headers to send: `headers` plus X-Project-Id, X-Security-Token, X-Sdk-Date, Host and
    Authorization. An X-Sdk-Date or Host already in `headers` is kept and signed as it is."""
    out = dict(headers)
    if key.project_id:
        out["X-Project-Id"] = key.project_id
    if key.security_token:
        out["X-Security-Token"] = key.security_token
    lower = {name.lower(): name for name in out}
    content_type = out.get(lower.get("content-type", ""), "")
    if content_type and not content_type.startswith(("application/json", "application/bson")):
        out[CONTENT_HASH_HEADER] = UNSIGNED_PAYLOAD  # the SDK does not hash other payloads
    parts = urlsplit(url)
    if "x-sdk-date" in lower:
        date = out[lower["x-sdk-date"]]
    else:
        date = time.strftime(DATE_FORMAT, time.gmtime(time.time() if now is None else now))
        out["X-Sdk-Date"] = date
    if "host" not in lower:
        # Sent explicitly, so the Host the server sees is exactly the one signed.
        out["Host"] = parts.netloc.rpartition("@")[2]
    signed = signed_header_names(out)
    canonical = canonical_request(method, parts.path, query_pairs(parts.query), out, signed, body)
    out["Authorization"] = (
        f"{ALGORITHM} Access={key.access_key}, SignedHeaders={';'.join(signed)}, "
        f"Signature={signature(key.secret_key, date, canonical)}"
    )
    return out


class AkSkAuth:
    """Signs every request. There is nothing to renew: a 401 means the key, the secret or this
    machine's clock is wrong, and each further failure counts toward the gateway's lockout (five
    in a row lock the key for five minutes), so a 401 is final and stops the job."""

    name = "aksk"

    def __init__(self, key: AccessKey, stop: Stopper, clock: Callable[[], float] = time.time) -> None:
        self.key = key
        self._stop = stop
        self._clock = clock

    async def headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        return sign(self.key, method, url, {"Content-Type": JSON} if body else {}, body,
                    self._clock())

    async def refresh_after_401(self, sent_at: float) -> bool:
        self._stop.request("credentials refused: the API refused the AK/SK signature (HTTP 401)")
        return False

    async def close(self) -> None:
        return None
