"""The keys of one queue and the format of its messages: what any producer writes to the stream
and what the results stream holds. Stream values are strings; an absent field means "not given"
(None), so an empty string is a real value (set the description to empty)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..jobs import Job, Problem, RawRow, Rejection
from ..report import COLUMNS
from ..results import Result

# What a job message may carry; any other field is ignored (room for producers' own fields).
JOB_FIELDS = (
    "snapshot_id", "project_id", "region", "name", "description", "display_name",
    "display_description", "previous_name", "previous_description",
)
# Where the job came from, for traceability: copied to its result and dead-letter entries.
TRACE_FIELDS = ("source", "line")
# A job needs six fields of at most 255 bytes each; the rest is room for a producer's own
# fields. A bigger message is a producer's bug: it is rejected, and no copy of it spreads to the
# results stream, the dead letters or the report.
MAX_MESSAGE_CHARS = 65_536
MAX_FIELD_CHARS = 1024  # a job field holds at most 255 bytes: a longer value is named, not copied
LINE_RE = re.compile(r"[0-9]{1,15}")  # ASCII digits only: int() also takes '٣' and refuses '²'


@dataclass(frozen=True)
class QueueNames:
    """The jobs stream and its siblings: `relabel:jobs` has `relabel:results` and `relabel:dead`;
    any other name S has `S:results` and `S:dead`. On Redis Cluster put a hash tag in the
    stream name (`{relabel}:jobs`) so the siblings share its slot, as the scripts need."""

    stream: str
    group: str

    def _sibling(self, suffix: str) -> str:
        base = self.stream.removesuffix(":jobs") if self.stream.endswith(":jobs") else self.stream
        return f"{base}:{suffix}"

    @property
    def results(self) -> str:
        return self._sibling("results")

    @property
    def dead(self) -> str:
        return self._sibling("dead")

    @property
    def errors(self) -> str:
        """A hash: entry id -> the last transient error, kept while the entry waits for its next
        delivery, so that the dead-letter entry can say why it died."""
        return self._sibling("errors")


def job_message(job: Job, source: str) -> dict[str, str]:
    fields = {"snapshot_id": job.snapshot_id, "project_id": job.project_id}
    for key in ("region", "name", "description", "previous_name", "previous_description"):
        value = getattr(job, key)
        if value is not None:
            fields[key] = value
    fields["source"] = _printable(source)  # a file name may hold bytes that are not UTF-8
    fields["line"] = str(job.line)
    return fields


def row_from_message(fields: Mapping[str, str], ref: object = None) -> RawRow | Rejection:
    """The job a message holds, or its rejection: never an exception, since a message that
    stopped the consumer would stop every consumer at every delivery. Values are decoded with
    surrogateescape: a field we read that is not UTF-8 text is a problem; the others are
    ignored, as documented."""
    read = {key: fields[key] for key in (*JOB_FIELDS, *TRACE_FIELDS) if key in fields}
    problems = [Problem(key, "invalid_utf8", "is not UTF-8 text")
                for key, value in read.items() if not _is_text(value)]
    problems += [Problem(key, "too_long", f"{len(value)} characters, far more than a job field holds")
                 for key, value in read.items() if key != "source" and len(value) > MAX_FIELD_CHARS]
    size = sum(len(key) + len(value) for key, value in fields.items())
    if size > MAX_MESSAGE_CHARS:
        largest = max(fields, key=lambda key: len(fields[key]))
        problems.append(Problem(_printable(largest), "message_too_large", (
            f"{len(fields[largest])} characters, in a message of {size}: a job message holds "
            f"at most {MAX_MESSAGE_CHARS}")))
    line = read.get("line", "0")
    if not LINE_RE.fullmatch(line):
        problems.append(Problem("line", "invalid_line", f"{line[:20]!r} is not a line number"))
        line = "0"
    job = {key: read[key] for key in JOB_FIELDS if key in read}
    if problems:  # only what can be shown goes on into the result
        shown = {key: value for key, value in job.items()
                 if _is_text(value) and len(value) <= MAX_FIELD_CHARS}
        return Rejection(int(line), shown, problems, ref)
    return RawRow(int(line), job, ref)


def _printable(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def result_entry(result: Result, job_id: str, consumer: str, message: Mapping[str, str],
                 redact: Callable[[str], str]) -> dict[str, str]:
    """One results-stream entry: the report's columns (absent when empty), the job's entry id
    and source, and the consumer that finished it."""
    entry = {"job_id": job_id, "consumer": consumer}
    if "source" in message:  # as text, and bounded: the message may be a rejected one
        entry["source"] = _printable(message["source"][:MAX_FIELD_CHARS])
    for name in COLUMNS:
        value = getattr(result, name)
        if value is not None:
            entry[name] = redact(value) if isinstance(value, str) else str(value)
    return entry
