"""The answer for one input row: exactly one per row, whatever happened to it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .api.client import Answer
from .jobs import Job, Rejection, raw_texts
from .stamps import now_iso


class Outcome(StrEnum):
    APPLIED = "applied"  # the server confirmed the new values
    UNCHANGED = "unchanged"  # the snapshot already carried the requested values
    REJECTED = "rejected"  # invalid row: never sent
    FAILED = "failed"  # sent, and the server refused it or retries ran out
    INTERRUPTED = "interrupted"  # the job stopped before this row finished: resume retries it
    DRY_RUN = "dry_run"  # valid, and would have been sent
    NOT_ATTEMPTED = "not_attempted"  # a safety stop or --limit came first: resume sends it

    @property
    def final(self) -> bool:
        """A final row is never sent again by --resume."""
        return self not in (Outcome.INTERRUPTED, Outcome.DRY_RUN, Outcome.NOT_ATTEMPTED)

    @property
    def success(self) -> bool:
        return self in (Outcome.APPLIED, Outcome.UNCHANGED, Outcome.DRY_RUN)


@dataclass(slots=True)
class Result:
    line: int
    snapshot_id: str | None
    project_id: str | None
    name: str | None
    description: str | None
    outcome: Outcome
    http_status: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    attempts: int = 0
    latency_ms: float | None = None
    request_id: str | None = None
    server_name: str | None = None
    server_description: str | None = None
    previous_name: str | None = None
    previous_description: str | None = None
    finished_at: str = ""
    region: str | None = None  # the row's region; None: the job's own (one-region jobs show none)
    ref: Any = None  # the source's handle (a queue message id): not written to the report

    def __post_init__(self) -> None:
        if not self.finished_at:
            self.finished_at = now_iso()


def from_job(job: Job, outcome: Outcome, **fields: Any) -> Result:
    return Result(
        job.line, job.snapshot_id, job.project_id, job.name, job.description, outcome,
        previous_name=job.previous_name, previous_description=job.previous_description,
        ref=job.ref, region=job.region, **fields,
    )


def from_answer(job: Job, answer: Answer, outcome: Outcome, attempts: int) -> Result:
    """Built by position, in the order of Result's fields, not through from_job's keywords: a
    row's answer is the hot path (keywords cost 0.7 µs more; tests/test_results.py holds it to
    what from_job builds)."""
    snapshot = answer.payload or {}
    error = answer.error
    if outcome is Outcome.APPLIED and _nothing_changed(job, snapshot):
        outcome = Outcome.UNCHANGED
    return Result(
        job.line, job.snapshot_id, job.project_id, job.name, job.description, outcome,
        answer.status,  # http_status
        error.code if error else None,  # error_code
        error.message if error else None,  # error_message
        attempts,
        round(answer.latency * 1000, 1),  # latency_ms
        answer.request_id,
        snapshot.get("name"),  # server_name
        snapshot.get("description"),  # server_description
        job.previous_name, job.previous_description,
        now_iso(),  # finished_at
        job.region, job.ref,
    )


def _nothing_changed(job: Job, snapshot: dict[str, Any]) -> bool:
    """The previous values are known and equal to the targets, and the server answered them."""
    name, description = job.name, job.description
    return ((name is None or (job.previous_name == name and snapshot.get("name") == name))
            and (description is None or (job.previous_description == description
                                         and snapshot.get("description") == description)))


def from_rejection(rejection: Rejection, default_project_id: str | None) -> Result:
    texts = raw_texts(rejection.fields)
    return Result(
        rejection.line,
        texts["snapshot_id"],
        texts["project_id"] or default_project_id,
        texts["name"],
        texts["description"],
        Outcome.REJECTED,
        error_code=rejection.code,
        error_message=rejection.message,
        previous_name=texts["previous_name"],
        previous_description=texts["previous_description"],
        ref=rejection.ref,
        region=texts["region"],
    )
