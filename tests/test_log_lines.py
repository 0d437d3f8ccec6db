"""JSON log lines are byte for byte what structlog's own JSONRenderer and TimeStamper wrote
before worker/logs.py made them itself (one encoder for all lines, a hand-made time stamp), and
carry no secret."""

import io
import logging
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog

from worker import logs, stamps
from worker.redaction import SecretRegistry

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECRET = "hunter2-token-value"


class Labelled:
    def __structlog__(self):
        return {"labelled": True}


class Opaque:
    def __repr__(self):
        return f"<opaque {SECRET}>"


def events():
    """(method, event, fields) as the code logs them, and some it might."""
    yield "info", "job", dict(line=2, snapshot_id="0a1b2c3d-0000-4000-8000-00000000abcd",
                              outcome="applied", http_status=200, error_code=None, error=None,
                              attempts=1, latency_ms=10.3, request_id="req-1")
    yield "warning", "job", dict(line=3, outcome="failed", http_status=400, error_code="bad",
                                 error=f'quoted "{SECRET}" back / \u2028 \x00 快照 \U0001f600',
                                 attempts=3, latency_ms=None, request_id=None)
    yield "info", "summary", dict(counts={"applied": 3, "failed": 1}, by_pair=[["p", "r"]],
                                  ratio=1 / 3, big=10**30, flag=True, path=Path("/tmp/x"),
                                  labelled=Labelled(), opaque=Opaque(), nan=float("nan"))
    yield "error", "événement ünïcode", dict(secret=SECRET, timestamp="given by the caller")


def lines(processors, monkeypatch, ns):
    out = io.StringIO()
    structlog.configure(processors=processors,
                        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
                        logger_factory=lambda *_: logs._LineLogger(out),
                        cache_logger_on_first_use=False)
    log = structlog.get_logger("snaprelabel").bind(job="bound")
    for method, event, fields in events():
        getattr(log, method)(event, **fields)
    try:
        raise ValueError(f"boom {SECRET}")
    except ValueError:
        log.error("failed", exc_info=True)
    return out.getvalue()


@pytest.mark.parametrize("ns", [1_796_315_441_123_456_789, 1_796_315_441_000_000_000,
                                1_796_315_441_000_000_999, 1_798_761_599_999_999_000])
def test_json_lines_are_what_structlog_wrote(monkeypatch, ns):
    at = EPOCH + timedelta(microseconds=ns // 1000)
    fixed = type("Fixed", (datetime,), {"now": classmethod(lambda cls, tz=None: at)})
    monkeypatch.setattr(structlog.processors, "datetime",
                        types.SimpleNamespace(datetime=fixed, timezone=__import__("datetime").timezone))
    monkeypatch.setattr(stamps, "time_ns", lambda: ns)
    secrets = SecretRegistry()
    secrets.add(SECRET)
    monkeypatch.setattr(logs, "SECRETS", secrets)

    logs.configure("debug", "json", io.StringIO())
    ours = lines(structlog.get_config()["processors"], monkeypatch, ns)
    before = lines([structlog.contextvars.merge_contextvars,
                    structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.format_exc_info,
                    logs._RedactingRenderer(structlog.processors.JSONRenderer(ensure_ascii=False))],
                   monkeypatch, ns)
    try:
        assert ours == before
        assert ours.count("\n") == 5
        assert SECRET not in ours and "***" in ours
        assert f'"timestamp": "{stamps.iso_us(ns)}"' in ours
    finally:
        logs.configure("warning", "json")  # as conftest leaves it
