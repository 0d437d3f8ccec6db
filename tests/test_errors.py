"""Every error shape the API family sends, secrets it may echo, and Retry-After in both forms
and in absurd ones."""

import base64
import email.utils
import html
import io
import json
import math
import sys
import time
from urllib.parse import quote, quote_plus

import pytest

from worker.api.errors import MAX_RETRY_AFTER, describe_error, parse_retry_after, redirect_error, server_second
from worker.rate import AdaptiveRateLimiter
from worker.redaction import MASK, SECRETS
from worker.retry import RetryPolicy


@pytest.mark.parametrize("status, body, code, message, request_id", [
    (404, b'{"itemNotFound": {"code": 404, "message": "Snapshot X could not be found."}}',
     "itemNotFound", "Snapshot X could not be found.", None),
    (400, b'{"badRequest": {"code": 400, "message": "Invalid input for field/attribute name."}}',
     "badRequest", "Invalid input for field/attribute name.", None),
    (400, b'{"error": {"message": "bad thing", "code": "EVS.2024"}}', "EVS.2024", "bad thing", None),
    (500, b'{"error": {"message": "oops", "code": 500}}', "http_500", "oops", None),
    (429, b'{"error_code": "APIGW.0308", "error_msg": "The throttling threshold has been reached", '
          b'"request_id": "abc123"}', "APIGW.0308", "The throttling threshold has been reached",
     "abc123"),
    (502, b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
     "http_502", "502 Bad Gateway", None),
    (503, b"", "http_503", "Service Unavailable (empty body)", None),
    (504, b"upstream timed out", "http_504", "upstream timed out", None),
    (500, b'{"snapshot": ', "http_500", '{"snapshot":', None),
    (418, b'{"message": "short and stout"}', "http_418", "short and stout", None),
])
def test_error_shapes(status, body, code, message, request_id):
    error = describe_error(status, body)
    assert (error.code, error.message, error.request_id) == (code, message, request_id)


def test_long_messages_are_clipped():
    assert len(describe_error(500, b"x" * 5000).message) == 500


def test_retry_after_seconds_and_http_date():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0
    now = time.time()
    date = email.utils.formatdate(now + 5, usegmt=True)
    assert 3.5 <= parse_retry_after(date, now) <= 5.0
    past = email.utils.formatdate(now - 60, usegmt=True)
    assert parse_retry_after(past, now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_the_servers_second_from_its_date_header():
    assert server_second("Fri, 04 Dec 2026 19:03:07 GMT") == 1796410987
    assert server_second("Fri, 04 Dec 2026 19:03:07 +0100") == 1796410987 - 3600
    # Not a date, none, absurd or endless: no second, never an exception.
    for value in (None, "", "soon", "Fri, 04 Dec 99999 19:03:07 GMT", "Fri, 32 Dec 2026 19:03:07 GMT",
                  "x" * 10_000, "Fri, 04 Dec 2026 25:03:07 GMT"):
        assert server_second(value) is None


def test_backoff_is_capped_full_jitter_and_429_waits_seconds():
    policy = RetryPolicy(base=0.5, cap=4.0, throttled_min=2.0)
    waits = [policy.delay(attempt, 503, None) for attempt in range(1, 10) for _ in range(50)]
    assert min(waits) >= 0 and max(waits) <= 4.0
    assert len({round(w, 6) for w in waits}) > 100  # jittered, not a fixed ladder
    assert min(policy.delay(1, 429, None) for _ in range(100)) >= 2.0
    assert policy.delay(1, 429, 7.0) == 7.0  # the server's word wins


PASSWORD = 'pa"ss/wörd+&=% 1\\x<é>'


@pytest.fixture
def secret():
    SECRETS.add(PASSWORD)
    return PASSWORD


@pytest.mark.parametrize("echo", [
    lambda pw: json.dumps({"error": {"message": f"bad password {pw}", "code": 401}}),
    lambda pw: json.dumps({"error": {"message": f"bad password {pw}", "code": 401}}, ensure_ascii=False),
    lambda pw: json.dumps({"error_msg": f"bad password {pw}", "error_code": "IAM.0001"}).replace("/", "\\/"),
    lambda pw: f"<html><title>401 for password={quote(pw)}</title></html>",
    lambda pw: f"password={quote(pw, safe='')}",
    lambda pw: f"password={quote(pw, safe='').lower()}",
    lambda pw: f"password={quote_plus(pw)}",
    lambda pw: f"<p>{html.escape(pw)}</p>",
    lambda pw: "Authorization: Basic " + base64.b64encode(f"alice:{pw}".encode()).decode(),
    lambda pw: "Basic " + base64.urlsafe_b64encode(f"al:{pw}".encode()).decode(),
    lambda pw: "x" * 490 + pw,  # a secret across the clipping point is masked whole first
])
def test_a_secret_echoed_in_an_error_is_masked_in_any_encoding(secret, echo):
    error = describe_error(401, echo(secret).encode())
    shown = f"{error.code} {error.message}"
    assert MASK in shown
    for part in (secret, secret[:8], quote(secret, safe="")[:12], "wörd", "ss/w"):
        assert part not in shown


@pytest.mark.parametrize("value, seconds", [
    ("1000000000", MAX_RETRY_AFTER),  # 31 years
    ("1e9", MAX_RETRY_AFTER),
    ("inf", MAX_RETRY_AFTER),
    ("Infinity", MAX_RETRY_AFTER),
    ("1" * 400, MAX_RETRY_AFTER),  # past what a float holds: inf
    ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER),
    ("-5", 0.0),
    ("-inf", 0.0),
    ("nan", None),  # means nothing: the usual backoff applies
    ("Mon, 99 Foo 0000 99:99:99 GMT", None),
])
def test_an_absurd_retry_after_is_clamped_to_a_documented_maximum(value, seconds):
    assert parse_retry_after(value) == seconds


async def test_an_absurd_retry_after_pauses_the_adaptive_limiter_a_minute_at_most():
    now, slept = [1000.0], []

    async def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    limiter = AdaptiveRateLimiter(clock=lambda: now[0], sleep=sleep)
    await limiter.acquire()
    for retry_after in (1e9, math.inf, math.nan, -5.0):
        limiter.observe(429, retry_after)
    await limiter.acquire()
    assert 0 < sum(slept) <= AdaptiveRateLimiter.MAX_PAUSE


@pytest.mark.parametrize("location, shown", [
    ("https://other.example/v2/p/snapshots/s?X-Auth-Token=abc#frag",
     "https://other.example/v2/p/snapshots/s"),
    ("/login?next=/v2&sig=abc", "https://evs.example/login"),  # relative: made absolute
    ("http://user:secret@other.example:8080/x?q", "http://other.example:8080/x"),
    (None, "nowhere (no Location)"),
    ("http://[::1/x?sig=abc", "http://[::1/x"),  # not a URL: still without its query
])
def test_a_redirect_names_where_it_points_without_query_or_credentials(location, shown):
    error = redirect_error("https://evs.example/v2/p/snapshots/s", location)
    assert error.code == "redirect"
    assert error.message.startswith(f"redirected to {shown};")


def test_every_printed_line_is_redacted_whoever_prints_it(monkeypatch):
    from worker.redaction import SECRETS, redact_output

    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    SECRETS.add("printed-secret-4f1c")
    redact_output()
    redact_output()  # twice is once: no proxy around a proxy
    print("token printed-secret-4f1c in a message")
    print("quoted: printed-secret-4f1c", file=sys.stderr)
    assert out.getvalue() == "token *** in a message\n" and err.getvalue() == "quoted: ***\n"
