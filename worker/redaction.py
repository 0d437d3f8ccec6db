"""Every secret the process knows, so that no output can carry one: logs, reports and error
messages all pass through `redact`."""

from __future__ import annotations

import re

MASK = "***"
_MIN_LENGTH = 4  # shorter values would mask ordinary words


class SecretRegistry:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str | None) -> None:
        if value and len(value) >= _MIN_LENGTH and value not in self._values:
            self._values.add(value)
            # Longest first, so a secret that contains another is masked whole.
            ordered = sorted(self._values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def redact(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)


SECRETS = SecretRegistry()
