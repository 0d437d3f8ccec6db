"""structlog set-up: JSON lines for containers and pipes, a readable console on a terminal.
Every line passes through the secret registry after rendering, so no field, message or
traceback can carry a credential."""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

from .redaction import SECRETS
from .stamps import log_stamp

LEVELS = ("debug", "info", "warning", "error")


class _RedactingRenderer:
    def __init__(self, inner: Callable[[WrappedLogger, str, EventDict], str]) -> None:
        self._inner = inner

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> str:
        return SECRETS.redact(self._inner(logger, method, event))


def _fallback(value: Any) -> Any:
    """What structlog's JSONRenderer writes for a value JSON has no form for."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


# Built once: json.dumps with any option set builds a new encoder on every call (0.75 µs of a
# job event's 12, docs/design.md#log-events). The text is json.dumps(event, ensure_ascii=False,
# default=...)'s, as structlog.processors.JSONRenderer(ensure_ascii=False) wrote it.
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=_fallback)


def _render_json(logger: WrappedLogger, method: str, event: EventDict) -> str:
    """A JSON line, redacted (as _RedactingRenderer, one call less a line)."""
    return SECRETS.redact(_ENCODER.encode(event))


def _add_timestamp(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """structlog's TimeStamper(fmt="iso", utc=True), the same text made by hand (worker/stamps.py):
    2026-12-03T16:30:41.123456Z."""
    event["timestamp"] = log_stamp()
    return event


class _TqdmSafeLogger:
    """Writes a line without breaking a progress bar drawn on the same terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        from tqdm import tqdm

        tqdm.write(message, file=self._stream)

    log = debug = info = warning = warn = error = critical = exception = msg


class _LineLogger:
    """One write a line, flushed at once, except while lines are held (`held_lines`): then one
    write and one flush for all of them. structlog's PrintLogger prints (message, then newline)
    and flushes every line: a job event a row cost two writes to a pipe. The held lines are
    kept here, not in the stream's buffer: with PYTHONUNBUFFERED (set in the image) that buffer
    writes through, one system call a line (docs/design.md#log-events)."""

    def __init__(self, stream: TextIO) -> None:
        # As PrintLogger: the process's own stdout is looked up at each line, so that a
        # redirection made later (a test's capture) is followed.
        self._stream = None if stream is _STDOUT else stream
        self._lock = threading.Lock()
        self._lines: list[str] = []  # held, in order

    def msg(self, message: str) -> None:
        with self._lock:
            if _held:
                self._lines.append(message)
                return
            stream = self._stream or sys.stdout
            stream.write(message + "\n")
            stream.flush()

    def flush(self) -> None:
        with self._lock:
            stream = self._stream or sys.stdout
            if self._lines:
                lines, self._lines = self._lines, []
                stream.write("\n".join(lines) + "\n")
            stream.flush()

    log = debug = info = warning = warn = error = critical = exception = msg


_STDOUT = sys.stdout
_held = 0  # > 0: lines wait in the stream's buffer until held_lines() ends
_json_logger: _LineLogger | None = None


@contextmanager
def held_lines() -> Iterator[None]:
    """The lines logged inside go out in one flush at the end (the engine's writer, once per
    batch of finished rows). Console output is not held: it goes around a progress bar."""
    global _held
    _held += 1
    try:
        yield
    finally:
        _held -= 1
        if not _held and _json_logger is not None:
            _json_logger.flush()


def wants_json(fmt: str, stream: TextIO) -> bool:
    return fmt == "json" or (fmt == "auto" and not stream.isatty())


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> bool:
    """Returns True when the output is JSON (a container or a pipe)."""
    global _json_logger
    stream = stream or sys.stdout
    as_json = wants_json(fmt, stream)
    _json_logger = None
    if as_json:
        renderer: Any = _render_json
        line_logger = _json_logger = _LineLogger(stream)
        factory: Any = lambda *_: line_logger  # noqa: E731
    else:
        renderer = _RedactingRenderer(structlog.dev.ConsoleRenderer(colors=stream.isatty()))
        factory = lambda *_: _TqdmSafeLogger(stream)  # noqa: E731
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _add_timestamp,
            structlog.processors.format_exc_info,
            renderer,  # every line redacted
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    return as_json


log = structlog.get_logger("snaprelabel")
