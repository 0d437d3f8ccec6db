"""structlog set-up: JSON lines for containers and pipes, a readable console on a terminal.
Every line passes through the secret registry after rendering, so no field, message or
traceback can carry a credential."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

from .redaction import SECRETS

LEVELS = ("debug", "info", "warning", "error")


class _RedactingRenderer:
    def __init__(self, inner: Callable[[WrappedLogger, str, EventDict], str]) -> None:
        self._inner = inner

    def __call__(self, logger: WrappedLogger, method: str, event: EventDict) -> str:
        return SECRETS.redact(self._inner(logger, method, event))


class _TqdmSafeLogger:
    """Writes a line without breaking a progress bar drawn on the same terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def msg(self, message: str) -> None:
        from tqdm import tqdm

        tqdm.write(message, file=self._stream)

    log = debug = info = warning = warn = error = critical = exception = msg


def wants_json(fmt: str, stream: TextIO) -> bool:
    return fmt == "json" or (fmt == "auto" and not stream.isatty())


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> bool:
    """Returns True when the output is JSON (a container or a pipe)."""
    stream = stream or sys.stdout
    as_json = wants_json(fmt, stream)
    if as_json:
        renderer: Any = structlog.processors.JSONRenderer(ensure_ascii=False)
        factory: Any = structlog.PrintLoggerFactory(stream)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
        factory = lambda *_: _TqdmSafeLogger(stream)  # noqa: E731
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _RedactingRenderer(renderer),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    return as_json


log = structlog.get_logger("snaprelabel")
