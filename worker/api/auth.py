"""How requests prove who sends them. Every auth method gives headers for one request and says
whether a 401 is worth one retry (a refreshed token) or final."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class AuthError(Exception):
    """The credentials were refused, or the identity service could not be used. The message is
    one line that names no secret; `transient` says whether trying again later can succeed."""

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class Auth(Protocol):
    name: str
    # Set by the runner: called once the credentials are known to be refused for good, so the
    # job stops instead of sending every remaining row to a certain 401.
    on_refused: Callable[[str], None] | None

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
        self.on_refused: Callable[[str], None] | None = None

    async def headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        return self._headers

    async def refresh_after_401(self, sent_at: float) -> bool:
        return False

    async def close(self) -> None:
        return None


class NoAuth(StaticToken):
    """For endpoints that need no credentials (a local simulator started with --no-auth)."""

    name = "none"

    def __init__(self) -> None:
        self._headers = {}
        self.on_refused = None
