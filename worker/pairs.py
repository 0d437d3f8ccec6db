"""The (project, region) pairs of a job: read from its jobs file before the start (so that each
is proven before any PUT), and counted by outcome as the rows finish (for the manifest and the
summary line, when the job has more than one)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from .jobs import PROJECT_RE, REGION_RE, RawRow, Rejection
from .results import Result

# More pairs than this in one file is a mistake (a region column read as project ids?): the
# prepass stops counting, and the rest are proven as the rows meet them.
MOST_PAIRS = 1000


def named_pairs(rows: Iterable[RawRow | Rejection], default_project: str | None
                ) -> list[tuple[str, str | None]]:
    """The distinct (project id, region) pairs of the valid-looking rows, in order of first
    appearance; a row whose project or region is malformed is left to the validator."""
    seen: dict[tuple[str, str | None], None] = {}
    for row in rows:
        if isinstance(row, Rejection):
            continue
        project = _text(row.fields.get("project_id")) or default_project
        region = _text(row.fields.get("region"))
        if project is None or not PROJECT_RE.fullmatch(project):
            continue
        if region is not None and not REGION_RE.fullmatch(region):
            continue
        seen.setdefault((project, region), None)
        if len(seen) >= MOST_PAIRS:
            break
    return list(seen)


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


class PairCounts:
    """A sink: each row's outcome by the pair it names (its region, or the job's)."""

    def __init__(self, default_region: str | None) -> None:
        self._region = default_region
        self.counts: dict[str, Counter[str]] = {}

    def write_batch(self, results: list[Result]) -> None:
        for result in results:
            region = result.region or self._region
            key = f"{result.project_id or '(none)'}@{region}" if region else (result.project_id or "(none)")
            counts = self.counts.get(key)
            if counts is None:
                counts = self.counts[key] = Counter()
            counts[str(result.outcome)] += 1

    def figures(self) -> dict[str, dict[str, int]] | None:
        """By pair, only for a job of several: a one-project job's output stays as it was."""
        if len(self.counts) < 2:
            return None
        return {key: dict(counts) for key, counts in sorted(self.counts.items())}
