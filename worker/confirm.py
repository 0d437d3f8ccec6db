"""Ask before a big job: on a terminal, a job of more than 1,000 rows shows its totals and a few
sample changes and asks; `--yes` skips the question, and it is never asked when stdin is not a
terminal (a pipe, a container, CI) or is the input itself.

The totals come from a dry pre-pass that reads and validates the whole input once, holding only
counts and the samples, so a streamed input stays streamed; the run then reads it again. The cost
is one more read and validation of the file before the first request (measured in bench/)."""

from __future__ import annotations

import signal
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from .jobs import Job, Rejection, Validator
from .settings import ConfigError, Settings
from .sources import InputSpec, count_rows

ASK_ABOVE = 1000  # rows
SAMPLES = 5


@dataclass
class Preview:
    valid: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    samples: list[Job] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.valid + self.rejected


def wants_confirmation(spec: InputSpec, yes: bool, dry_run: bool, stdin: TextIO = sys.stdin) -> bool:
    return not yes and not dry_run and spec.path != "-" and stdin.isatty()


def preview(spec: InputSpec, settings: Settings) -> Preview | None:
    """The totals of a job of more than ASK_ABOVE rows; None for a smaller one. A file whose
    line count already says it is small is not read twice."""
    from .runner import open_input, rules_from

    lines = count_rows(spec)
    if lines is not None and lines <= ASK_ABOVE:
        return None
    result = Preview()
    validator = Validator(rules_from(settings))
    with open_input(spec, settings) as rows:
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


def describe(spec: InputSpec, settings: Settings, endpoint: str, p: Preview) -> str:
    lines = [f"{spec.display_name}: {p.rows:,} rows: {p.valid:,} changes to send, "
             f"{p.rejected:,} rejected"
             + (f" ({', '.join(f'{code} {n:,}' for code, n in p.reasons.most_common(5))})"
                if p.rejected else "")]
    lines.append(f"to {endpoint} (project {settings.project_id or 'from the rows'}), "
                 + ("at the API's quota, found from its 429 answers (--rate auto)"
                    if settings.rate == "auto" else f"at most {settings.rate:g} requests/s"
                    + (f", about {_duration(p.valid / settings.rate)}" if settings.rate else "")))
    if settings.limit is not None:
        lines.append(f"--limit {settings.limit:,}: only the first {settings.limit:,} valid rows are sent")
    if settings.canary:
        lines.append(f"--canary {settings.canary:,}: the first {settings.canary:,} go alone; "
                     "any failure among them stops the job")
    lines.append("sample changes:")
    for job in p.samples:
        for what, old, new in (("name", job.previous_name, job.name),
                               ("description", job.previous_description, job.description)):
            if new is not None:
                before = f"{old!r} → " if old is not None else ""
                lines.append(f"  line {job.line}: {job.snapshot_id} {what}: {before}{new!r}")
    return "\n".join(lines)


def confirm(spec: InputSpec, settings: Settings, endpoint: str, stdin: TextIO = sys.stdin,
            out: TextIO = sys.stderr) -> None:
    """Returns when the job may start; raises ConfigError (exit 2, nothing sent) otherwise.
    Asked once the credentials are proven, so a "yes" is not followed by a refusal."""
    p = preview(spec, settings)
    if p is None:
        return
    # Under asyncio, Ctrl-C only cancels the main task, which a blocked read never notices:
    # Python's own handler makes it stop the question at once (exit 130).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        out.write(describe(spec, settings, endpoint, p) + f"\nApply {p.valid:,} changes? [y/N] ")
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
