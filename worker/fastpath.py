"""uvloop and orjson (dependencies where they have wheels; uvloop has none for Windows): used
when installed, the standard library otherwise. What each buys, and why they are dependencies:
docs/design.md#uvloop-and-orjson.

orjson encodes request bodies and decodes answers, byte for byte what the standard library
would send; log lines stay with the standard library, so their format does not depend on
what is installed."""

from __future__ import annotations

import asyncio
import importlib
import json
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any, TypeVar

T = TypeVar("T")


def _std_dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _optional(name: str) -> ModuleType | None:
    """The module when installed, else None; typed the same whether or not its stubs are."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


orjson = _optional("orjson")
_fast_dumps: Callable[[Any], bytes] | None = orjson.dumps if orjson is not None else None


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON, as json.dumps(ensure_ascii=False) writes it."""
    if _fast_dumps is not None:
        try:
            return _fast_dumps(obj)
        except TypeError:  # what orjson refuses (a lone surrogate, a huge int): the slow way
            pass
    return _std_dumps(obj)


loads: Callable[[bytes | str], Any] = orjson.loads if orjson is not None else json.loads


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
