"""Ask before a big job: on a terminal, a job of more than 1,000 rows shows its totals and a few
sample changes and asks; `--yes` skips the question, and it is never asked when stdin is not a
terminal (a pipe, a container, CI) or is the input itself.

The totals come from a dry pre-pass that reads and validates the whole input once, holding only
counts and the samples; the run then reads it again (its cost: docs/design.md#confirmation-pre-pass)."""

from __future__ import annotations

import signal
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from .errors import ConfigError
from .jobs import Job, JobRules, Rejection, Validator
from .sources import InputSpec, Rows, count_rows, is_rereadable

ASK_ABOVE = 1000  # rows
SAMPLES = 5


@dataclass(frozen=True)
class JobFacts:
    """What the question says of the job besides the rows."""

    destination: str  # "to ENDPOINT (project P), at most R requests/s"
    rate: float | None  # requests/s, for the time it will take; None: unknown (auto)
    limit: int | None
    canary: int


@dataclass
class Preview:
    valid: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    samples: list[Job] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.valid + self.rejected


def wants_confirmation(spec: InputSpec, yes: bool, dry_run: bool, stdin: TextIO | None = None) -> bool:
    """Only for a file that can be read twice (not stdin, a pipe or a FIFO), on a terminal."""
    stdin = stdin if stdin is not None else sys.stdin
    return (not yes and not dry_run and is_rereadable(spec.path)
            and stdin is not None and stdin.isatty())


def preview(spec: InputSpec, open_input: Callable[[], Rows], rules: JobRules) -> Preview | None:
    """The totals of a job of more than ASK_ABOVE rows; None for a smaller one. A file whose
    line count already says it is small is not read twice."""
    lines = count_rows(spec)
    if lines is not None and lines <= ASK_ABOVE:
        return None
    result = Preview()
    validator = Validator(rules)
    with open_input() as rows:
        for row in rows:
            item = row if isinstance(row, Rejection) else validator.validate(row)
            if isinstance(item, Rejection):
                result.rejected += 1
                result.reasons[item.code] += 1
                continue
            result.valid += 1
            if len(result.samples) < SAMPLES:
                result.samples.append(item)
    return result if result.rows > ASK_ABOVE else None


def describe(spec: InputSpec, facts: JobFacts, p: Preview) -> str:
    lines = [f"{spec.display_name}: {p.rows:,} rows: {p.valid:,} changes to send, "
             f"{p.rejected:,} rejected"
             + (f" ({', '.join(f'{code} {n:,}' for code, n in p.reasons.most_common(5))})"
                if p.rejected else "")]
    lines.append(facts.destination
                 + (f", about {_duration(p.valid / facts.rate)}" if facts.rate else ""))
    if facts.limit is not None:
        lines.append(f"--limit {facts.limit:,}: only the first {facts.limit:,} valid rows are sent")
    if facts.canary:
        lines.append(f"--canary {facts.canary:,}: the first {facts.canary:,} go alone; "
                     "any failure among them stops the job")
    lines.append("sample changes:")
    for job in p.samples:
        for what, old, new in (("name", job.previous_name, job.name),
                               ("description", job.previous_description, job.description)):
            if new is not None:
                before = f"{old!r} → " if old is not None else ""
                lines.append(f"  line {job.line}: {job.snapshot_id} {what}: {before}{new!r}")
    return "\n".join(lines)


def confirm(spec: InputSpec, open_input: Callable[[], Rows], rules: JobRules, facts: JobFacts,
            stdin: TextIO = sys.stdin, out: TextIO = sys.stderr) -> None:
    """Returns when the job may start; raises ConfigError (exit 2, nothing sent) otherwise.
    Asked once the credentials are proven, so a "yes" is not followed by a refusal."""
    p = preview(spec, open_input, rules)
    if p is None:
        return
    # Under asyncio, Ctrl-C only cancels the main task, which a blocked read never notices:
    # Python's own handler makes it stop the question at once (exit 130).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        out.write(describe(spec, facts, p) + f"\nApply {p.valid:,} changes? [y/N] ")
        out.flush()
        answer = stdin.readline().strip().lower()
    finally:
        signal.signal(signal.SIGINT, previous)
    if answer not in ("y", "yes"):
        raise ConfigError("not confirmed: nothing was sent (pass --yes to skip the question)")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
