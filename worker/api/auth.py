"""How requests prove who sends them. Every auth method gives headers for one request and says
whether a 401 is worth one retry (a refreshed token) or final."""

from __future__ import annotations

import time
from typing import Protocol

from ..errors import SnaprelabelError
from ..secret_file import SecretFile


class AuthError(SnaprelabelError):
    """The credentials were refused, or the identity service could not be used. The message is
    one line that names no secret; `transient` says whether trying again later can succeed."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class Stopper(Protocol):
    """The job's stop (worker/stop.py), as an auth method uses it: once its credentials are
    refused for good, every further request would be refused too (and under AK/SK count toward
    the key's lockout), so it stops the job."""

    def request(self, reason: str) -> None: ...


class Auth(Protocol):
    name: str

    async def headers(self, method: str, url: str, body: bytes) -> dict[str, str]: ...

    async def refresh_after_401(self, sent_at: float) -> bool:
        """Called on a 401 for a request sent at `sent_at` (time.monotonic()): True when a retry
        can succeed because the credentials were (or have just been) renewed since."""
        ...

    async def close(self) -> None: ...


class StaticToken:
    """A token the user already has (--token, SNAPRELABEL_TOKEN): nothing to refresh."""

    name = "token"

    def __init__(self, token: str) -> None:
        self._headers = {"X-Auth-Token": token}

    async def headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        return self._headers

    async def refresh_after_401(self, sent_at: float) -> bool:
        return False

    async def close(self) -> None:
        return None


class FileToken:
    """A token read from a file (--token-file: a mounted Secret that something else renews). The
    file is looked at (one stat) at most every `check_every` seconds and re-read when it was
    replaced, and re-read on a 401 before the request is given up: a rotated Secret keeps a
    long-running consumer working."""

    name = "token"

    def __init__(self, file: SecretFile, check_every: float = 5.0) -> None:
        self._file = file
        self._check_every = check_every
        self._headers = {"X-Auth-Token": file.value}
        self._renewed_at = float("-inf")  # monotonic time the token last changed
        self._next_check = time.monotonic() + check_every

    async def headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + self._check_every
            if self._file.changed_on_disk():
                self._reread()
        return self._headers

    async def refresh_after_401(self, sent_at: float) -> bool:
        if self._renewed_at > sent_at:  # another request already found the new token
            return True
        return self._reread()

    def _reread(self) -> bool:
        if not self._file.reread():
            return False
        self._headers = {"X-Auth-Token": self._file.value}
        self._renewed_at = time.monotonic()
        return True

    async def close(self) -> None:
        return None


class NoAuth(StaticToken):
    """For endpoints that need no credentials (a local simulator started with --no-auth)."""

    name = "none"

    def __init__(self) -> None:
        self._headers = {}
