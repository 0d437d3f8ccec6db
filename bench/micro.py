"""Per-job cost of each piece of snaprelabel's hot path, timed alone (timeit, best of 5): robust
to a busy machine where whole-run figures wander. Run as `python -m bench.micro`."""

from __future__ import annotations

import asyncio
import io
import json
import timeit
from collections.abc import Callable
from pathlib import Path

from worker import fastpath
from worker.api.client import Answer
from worker.jobs import Job, JobRules, RawRow, Rejection, Validator
from worker.logs import configure
from worker.rate import AdaptiveRateLimiter, RateLimiter
from worker.redaction import SecretRegistry
from worker.report import ReportWriter
from worker.results import Outcome, from_answer
from worker.stamps import log_stamp, now_iso

PROJECT = "0123456789abcdef0123456789abcdef"
SID = "0a1b2c3d-0000-4000-8000-00000000abcd"


def per_call_us(fn: Callable[[], object], number: int = 20_000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def pieces(tmp: Path) -> dict[str, float]:
    validator = Validator(JobRules(default_project_id=PROJECT))
    counter = iter(range(10**9))

    def validate() -> Job | Rejection:  # a fresh id each time: duplicates are rejected early
        i = next(counter)
        return validator.validate(RawRow(2, {"snapshot_id": f"0a1b2c3d-0000-4000-8000-{i:012d}",
                                             "project_id": PROJECT, "name": f"bench-{i}"}))

    def validate_long() -> Job | Rejection:  # a 64-character name, Huawei's current limit
        i = next(counter)
        return validator.validate(RawRow(2, {"snapshot_id": f"0a1b2c3d-0000-4000-8000-{i:012d}",
                                             "project_id": PROJECT,
                                             "name": f"relabelled-by-snaprelabel-{i:038d}"}))

    job = validate()
    assert isinstance(job, Job), job
    body = job.body()
    raw = json.dumps({"snapshot": {"id": SID, "name": "bench-1", "status": "available"}}).encode()
    answer = Answer(200, payload={"id": SID, "name": "bench-1"}, request_id="req-1", latency=0.01)
    result = from_answer(job, answer, Outcome.APPLIED, 1)
    report = ReportWriter(str(tmp / "micro-report.csv"))
    batch = [result] * 256
    secrets = SecretRegistry()  # as a real job: its credentials known, every cell searched
    for secret in ("a-keystone-token-" + "x" * 180, "an-sk-of-forty-characters-0123456789abcd"):
        secrets.add(secret)
    redacted = ReportWriter(str(tmp / "micro-report-redacted.csv"), redact=secrets.redact)
    sink = io.StringIO()
    configure("info", "json", sink)
    from worker.logs import log

    def log_event() -> None:
        log.info("job", line=result.line, snapshot_id=result.snapshot_id,
                 outcome=str(result.outcome), http_status=result.http_status,
                 error_code=None, error=None, attempts=1, latency_ms=result.latency_ms,
                 request_id=result.request_id)
        sink.seek(0)

    out = {
        "validate a row (pydantic)": per_call_us(validate),
        "validate a row, 64-character name": per_call_us(validate_long),
        "JSON body (fastpath.dumps)": per_call_us(lambda: fastpath.dumps(body)),
        "answer JSON (fastpath.loads)": per_call_us(lambda: fastpath.loads(raw)),
        "result (from_answer)": per_call_us(
            lambda: from_answer(job, answer, Outcome.APPLIED, 1)),
        "finished_at (now_iso)": per_call_us(now_iso),
        "log time stamp (stamps.log_stamp)": per_call_us(log_stamp),
        "report row (CSV, per row of a 256 batch)": per_call_us(
            lambda: report.write_batch(batch), number=200) / 256,
        "report row, two secrets known (redacted)": per_call_us(
            lambda: redacted.write_batch(batch), number=200) / 256,
        "log event per job (structlog JSON)": per_call_us(log_event),
    }
    report.close()
    redacted.close()
    out.update(limiter_grant_us())
    return out


def limiter_grant_us() -> dict[str, float]:
    """A grant with nothing to wait for: the limiter's own cost per request."""
    async def grants(limiter, n: int = 20_000) -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(n):
            await limiter.acquire()
            limiter.observe(200, None)
        return (loop.time() - started) / n * 1e6

    fixed = RateLimiter(None)
    fast_auto = AdaptiveRateLimiter(start=1e9)
    return {
        "limiter grant, no limit": asyncio.run(grants(fixed)),
        "limiter grant + observe, auto": asyncio.run(grants(fast_auto)),
    }


if __name__ == "__main__":
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        costs = pieces(Path(tmp))
    if "--json" in sys.argv:
        print(json.dumps(costs))
    else:
        for name, us in costs.items():
            print(f"{us:8.2f} µs  {name}")
