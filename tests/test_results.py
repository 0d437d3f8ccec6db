"""A row's result from the server's answer (results.from_answer, built by position for speed) is
field for field what the keyword-built from_job made of it before, whatever the answer."""

import itertools

import pytest

from worker import results
from worker.api.client import Answer, ErrorInfo
from worker.jobs import Job
from worker.results import Outcome, Result, from_answer, from_job

SID = "0a1b2c3d-0000-4000-8000-00000000abcd"
PROJECT = "0123456789abcdef0123456789abcdef"


def before(job, answer, outcome, attempts):
    """from_answer as it was written before it built the result by position."""
    snapshot = answer.payload or {}
    error = answer.error
    if outcome is Outcome.APPLIED and all(
        target is None or (previous == target and snapshot.get(key) == target)
        for key, target, previous in (("name", job.name, job.previous_name),
                                      ("description", job.description, job.previous_description))
    ):
        outcome = Outcome.UNCHANGED
    return from_job(
        job, outcome, http_status=answer.status,
        error_code=error.code if error else None,
        error_message=error.message if error else None,
        attempts=attempts, latency_ms=round(answer.latency * 1000, 1),
        request_id=answer.request_id, server_name=snapshot.get("name"),
        server_description=snapshot.get("description"),
    )


def jobs():
    texts = (None, "", "new", "old")
    for name, description, previous_name, previous_description in itertools.product(texts, repeat=4):
        if name is None and description is None:
            continue
        yield Job(7, SID, PROJECT, name, description, previous_name, previous_description,
                  ref=("msg", 7), region="cn-north-4")
    yield Job(8, SID, PROJECT, "n", None)  # no region, no ref


def answers():
    payloads = (None, {}, {"name": "new"}, {"name": "new", "description": "new"},
                {"name": "old", "description": ""}, {"description": "new", "id": SID})
    for payload in payloads:
        yield Answer(200, payload=payload, request_id="req-1", latency=0.0123456)
    yield Answer(400, error=ErrorInfo("bad_request", "the name is bad"), request_id="req-2",
                 latency=1.25)
    yield Answer(None, error=ErrorInfo("connection_reset", "reset"), transient=True)
    yield Answer(429, error=ErrorInfo("throttled", "slow down"), retry_after=1.0, latency=0.00005)


@pytest.fixture(autouse=True)
def _fixed_time(monkeypatch):
    monkeypatch.setattr(results, "now_iso", lambda: "2026-12-03T16:30:41.123Z")


def test_from_answer_builds_what_from_job_built():
    seen = 0
    for job, answer, outcome, attempts in itertools.product(
            jobs(), answers(), (Outcome.APPLIED, Outcome.FAILED, Outcome.INTERRUPTED), (1, 3)):
        ours, theirs = from_answer(job, answer, outcome, attempts), before(job, answer, outcome, attempts)
        assert ours == theirs, (job, answer, outcome)
        assert type(ours.outcome) is Outcome
        seen += 1
    assert seen > 2_000


def test_every_field_lands_in_its_own_place():
    job = Job(7, SID, PROJECT, "new", "desc", "old", "old desc", ref="ref-1", region="cn-north-4")
    answer = Answer(409, payload={"name": "srv name", "description": "srv desc"},
                    error=ErrorInfo("conflict", "busy"), request_id="req-9", latency=0.5)
    assert from_answer(job, answer, Outcome.FAILED, 4) == Result(
        line=7, snapshot_id=SID, project_id=PROJECT, name="new", description="desc",
        outcome=Outcome.FAILED, http_status=409, error_code="conflict", error_message="busy",
        attempts=4, latency_ms=500.0, request_id="req-9", server_name="srv name",
        server_description="srv desc", previous_name="old", previous_description="old desc",
        finished_at="2026-12-03T16:30:41.123Z", region="cn-north-4", ref="ref-1")
