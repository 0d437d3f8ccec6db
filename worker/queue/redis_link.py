"""One Redis client per process, and the one place that rides out an outage.

redis-py's own retries are off: every command runs once per `RedisLink.call`, which retries
connection failures with capped, jittered backoff until Redis has been unreachable for `wait`
seconds (one outage clock for every caller), then raises RedisUnavailable. Commands that could
double a write when retried blindly are Lua scripts that check before they write.

An error answered (protected mode, NOPERM, WRONGTYPE, OOM) is no outage: before the work begins
(`at_work()`) it is a setting to fix (ConfigError, exit 2); after, it stops the job (RedisRefused,
exit 4) with the jobs held left unacknowledged.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    ConnectionError,
    ReadOnlyError,
    ResponseError,
    TimeoutError,
)

from ..errors import ConfigError, SnaprelabelError
from ..logs import log
from ..redaction import SECRETS
from ..secret_file import SecretFile

T = TypeVar("T")
# A blocking read waits this long at most, so the socket timeout must be longer.
BLOCK_MS = 1000
SOCKET_TIMEOUT = 10.0
BACKOFF_FIRST, BACKOFF_CAP = 0.1, 5.0
REPORT_EVERY = 30.0  # seconds between "still unreachable" lines

# Transient: the server is down, restarting, loading its data, or failing over (READONLY).
OUTAGE_ERRORS = (ConnectionError, TimeoutError, BusyLoadingError, ReadOnlyError, OSError)


class RedisUnavailable(SnaprelabelError):
    """Redis stayed unreachable for longer than the configured wait (exit code 4)."""


class RedisRefused(RedisUnavailable):
    """Redis answered an error to a command the job needs (OOM, a key of another type)."""


class RedisLost(SnaprelabelError):
    """Redis answered, but the stream's consumer group is gone: its data was lost (a restart
    without persistence, or someone deleted the stream). Exit code 4."""


def display_url(url: str) -> str:
    """The URL without its password, for logs and messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username + ':' if parts.username else ':'}***@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return parts._replace(netloc=netloc).geturl()


def without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


class FileCredentials:
    """The user and password of a URL file's current URL, asked by redis-py on every
    (re)connection (its CredentialProvider protocol): a rotated password is used from the next
    connection on, in every part that holds the client."""

    def __init__(self, file: SecretFile) -> None:
        self.file = file

    def get_credentials(self) -> tuple[str, ...]:
        parts = urlsplit(self.file.value)
        password = unquote(parts.password or "")
        if parts.username:
            return (unquote(parts.username), password)
        return (password,) if password else ()

    async def get_credentials_async(self) -> tuple[str, ...]:
        return self.get_credentials()


def client_for(url: str, credentials: FileCredentials | None = None) -> aioredis.Redis:
    parts = urlsplit(url)
    SECRETS.add(parts.password)
    if credentials is not None:  # redis-py takes credentials from the URL or a provider, not both
        url = without_credentials(url)
    return aioredis.Redis.from_url(
        url,
        credential_provider=credentials,
        decode_responses=True,
        # A message with bytes that are not UTF-8 is still read, then rejected by validation.
        encoding_errors="surrogateescape",
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=5.0,
        health_check_interval=15,
        retry=Retry(NoBackoff(), 0),  # ours alone: see RedisLink.call
        client_name="snaprelabel",
    )


class RedisLink:
    def __init__(self, url: str, wait: float, url_file: SecretFile | None = None) -> None:
        self.url = display_url(url)
        self.wait = wait
        self._url_file = url_file  # --redis-url-file: a rotated password is picked up on a refusal
        self._address = without_credentials(url)
        self._generation = 0  # how many times the URL file brought new credentials
        self.client = client_for(url, FileCredentials(url_file) if url_file else None)
        self.down_since: float | None = None  # monotonic start of the current outage
        self.give_up_at: float | None = None  # a stopping process waits no longer than this
        self._next_report = 0.0
        self._working = False

    @property
    def up(self) -> bool:
        return self.down_since is None

    def at_work(self) -> None:
        """The start-up checks are done: from now on an error answered stops the job (exit 4)."""
        self._working = True

    async def call(self, what: str, command: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """Run `command(client)`; on an outage retry until Redis has been gone `wait` seconds."""
        delay = BACKOFF_FIRST
        while True:
            generation = self._generation
            try:
                result = await command(self.client)
            except (AuthenticationError, AuthorizationError) as exc:
                if self._generation != generation or self._reread_url():
                    continue  # new credentials since this command left, or just now
                message = f"Redis at {self.url} refused our credentials: {exc}"
                if not self._working:  # at start: a setting to fix (exit 2), not an outage
                    raise ConfigError(message) from None
                raise RedisUnavailable(message) from None
            except OUTAGE_ERRORS as exc:
                if self._url_file is not None and self._url_file.changed_on_disk() and self._reread_url():
                    continue  # a connection dropped as the password rotated: try the new one
                remaining = self._outage(what, exc)
                await asyncio.sleep(min(delay * random.uniform(0.5, 1.0), remaining))
                delay = min(delay * 2, BACKOFF_CAP)
                continue
            except ResponseError as exc:
                if str(exc).startswith("NOGROUP"):
                    raise RedisLost(
                        f"Redis at {self.url} no longer has the consumer group ({what}): it lost "
                        "its data (restarted without persistence?) or the stream was deleted"
                    ) from None
                message = f"Redis at {self.url} answered an error to '{what}': {_first_sentence(exc)}"
                if not self._working:
                    raise ConfigError(message) from None
                raise RedisRefused(message) from None
            if self.down_since is not None:
                log.warning("redis reconnected", redis=self.url,
                            outage_s=round(time.monotonic() - self.down_since, 1))
                self.down_since = None
            return result

    def _reread_url(self) -> bool:
        """True when the URL file holds new credentials (FileCredentials hands them to the next
        connection). Only the user and password follow the file: another address needs a restart."""
        if self._url_file is None or not self._url_file.reread():
            return False
        url = self._url_file.value
        if without_credentials(url) != self._address:
            log.warning("redis url file: a new address is used after a restart; the new password now",
                        redis=self.url, new=display_url(url))
        self._generation += 1
        log.info("redis url file changed: reconnecting with the new URL", redis=self.url)
        return True

    def _outage(self, what: str, exc: BaseException) -> float:
        """Seconds left before giving up; raises RedisUnavailable when there are none."""
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
            self._next_report = now
        deadline = self.down_since + self.wait
        if self.give_up_at is not None:
            deadline = min(deadline, self.give_up_at)
        if now >= deadline:
            raise RedisUnavailable(
                f"Redis at {self.url} unreachable for {now - self.down_since:.0f} s "
                f"(while trying to {what}): giving up; last error: {type(exc).__name__}: {exc}"
            )
        if now >= self._next_report:
            self._next_report = now + REPORT_EVERY
            log.warning("redis unreachable: reconnecting", redis=self.url, action=what,
                        error=f"{type(exc).__name__}: {exc}", give_up_in_s=round(deadline - now))
        return deadline - now

    async def close(self) -> None:
        await self.client.aclose()


def _first_sentence(exc: Exception) -> str:
    """Redis explains some errors at length (protected mode: a page): its first sentence says
    it, without the name of the script that met it."""
    return re.split(r"\.? script: |\. ", str(exc))[0][:300]
