"""Secrets read from files that may be replaced while the process runs.

A Kubernetes Secret mounted as a volume is updated in place: the kubelet writes the new files and
swaps a symlink, so the path keeps its name and gets a new inode. A long-running consumer re-reads
such a file (`SecretFile.reread`) instead of failing once the value it started with expires.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .errors import ConfigError
from .logs import log
from .redaction import SECRETS

Stamp = tuple[int, int, int]


def read_secret_file(path: Path, what: str, secret_part: Callable[[str], str | None] | None = None) -> str:
    """The file's text without its trailing newline; ConfigError (one line) when it cannot be read
    or is empty. The value (or only its `secret_part`: a URL's password) is masked in all output."""
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the {what} file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not value:
        raise ConfigError(f"the {what} file {path} is empty")
    SECRETS.add(secret_part(value) if secret_part else value)
    return value


class SecretFile:
    def __init__(self, path: Path, what: str, secret_part: Callable[[str], str | None] | None = None) -> None:
        self.path = path
        self.what = what
        self._secret_part = secret_part
        self._stamp = self._stat()
        self.value = read_secret_file(path, what, secret_part)

    def changed_on_disk(self) -> bool:
        """A cheap look (one stat): has the file been replaced or written since it was read?"""
        stamp = self._stat()
        return stamp is not None and stamp != self._stamp

    def reread(self) -> bool:
        """Read the file again: True when it now holds another value (then `value`). A file that
        is missing, unreadable or empty (a swap caught half-way) keeps the value it had."""
        stamp = self._stat()
        try:
            value = read_secret_file(self.path, self.what, self._secret_part)
        except ConfigError as exc:
            log.warning("secret file unreadable: keeping the value read before", reason=str(exc))
            return False
        self._stamp = stamp
        if value == self.value:
            return False
        self.value = value
        log.info("secret file changed: using the new value", file=str(self.path), secret=self.what)
        return True

    def _stat(self) -> Stamp | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)
