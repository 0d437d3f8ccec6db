"""The keys of one queue and the format of its messages: what any producer writes to the stream
and what the results stream holds. Stream values are strings; an absent field means "not given"
(None), so an empty string is a real value (set the description to empty)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..jobs import Job, RawRow
from ..report import COLUMNS
from ..results import Result

# What a job message may carry; any other field is ignored (room for producers' own fields).
JOB_FIELDS = (
    "snapshot_id", "project_id", "name", "description", "display_name", "display_description",
    "previous_name", "previous_description",
)
# Where the job came from, for traceability: copied to its result and dead-letter entries.
TRACE_FIELDS = ("source", "line")


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
    for key in ("name", "description", "previous_name", "previous_description"):
        value = getattr(job, key)
        if value is not None:
            fields[key] = value
    fields["source"] = source
    fields["line"] = str(job.line)
    return fields


def row_from_message(fields: Mapping[str, str], ref: object = None) -> RawRow:
    line = fields.get("line", "")
    return RawRow(
        int(line) if line.isdigit() else 0,
        {key: fields[key] for key in JOB_FIELDS if key in fields},
        ref,
    )


def result_entry(result: Result, job_id: str, consumer: str, message: Mapping[str, str],
                 redact: Callable[[str], str]) -> dict[str, str]:
    """One results-stream entry: the report's columns (absent when empty), the job's entry id
    and source, and the consumer that finished it."""
    entry = {"job_id": job_id, "consumer": consumer}
    if "source" in message:
        entry["source"] = message["source"]
    for name in COLUMNS:
        value = getattr(result, name)
        if value is not None:
            entry[name] = redact(value) if isinstance(value, str) else str(value)
    return entry
