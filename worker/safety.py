"""Safety rails for a mass change: a job that fails for every row stops itself instead of sending
200,000 requests that all fail for the same reason.

- Failure rate: once `min_tasks` rows have been sent and are final, a failed fraction above
  `max_failure_rate` stops the job. Only rows that reached the API count (applied, unchanged,
  failed, with at least one attempt): a rejected row is a validation matter and never trips it.
  A row counts once, with its final outcome: a row applied on its third attempt is one success,
  a row that failed after six attempts is one failure.
- Auth failures: `max_consecutive_auth_failures` rows in a row whose final answer is 401 or 403
  stop the job at once, before `min_tasks`: the credentials or the permissions are wrong for every
  row. Any other HTTP answer ends the run; a row without an answer (a network error) neither
  extends nor ends it.
- Not found: when the first `max_leading_not_found` rows sent all answer 404, the job stops, before
  `min_tasks`: every row naming a snapshot the project does not have means the project id (or the
  endpoint's region) is wrong, not the rows. Any other answer first turns this rail off.
- Canary: the first `canary` valid rows are sent alone. The reader waits at the engine's gate
  until they are all final; any of them failing stops the job.
- Limit: only the first `limit` valid rows are sent; once they are final the job stops.

Every stop goes through the job's Stop with outcome NOT_ATTEMPTED: requests in flight finish
within the grace period, every other row is recorded `not_attempted`, and `--resume` sends them
later. A safety stop (not a limit) ends with exit code 3.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .jobs import Job
from .logs import log
from .results import Outcome, Result
from .stop import Stop

AUTH_STATUSES = frozenset({401, 403})
SENT_OUTCOMES = frozenset({Outcome.APPLIED, Outcome.UNCHANGED, Outcome.FAILED})
ROW_CAP = "limit"  # the stop reason of --limit (a row cap): the user's choice, not a safety stop


@dataclass(frozen=True)
class SafetyRules:
    max_failure_rate: float = 0.5
    min_tasks: int = 100
    max_consecutive_auth_failures: int = 10  # 0: off
    canary: int = 0  # 0: no canary
    limit: int | None = None
    max_leading_not_found: int = 10  # 0: off


class SafetyPolicy:
    """Plugged into the engine: `observe` is its per-result hook (called by the writer, once per
    final row), `admit` its gate (awaited by the reader before each valid row is queued)."""

    def __init__(self, rules: SafetyRules, stop: Stop) -> None:
        self.rules = rules
        self._stop = stop
        self.sent = 0  # rows sent and final
        self.failed = 0
        self.auth_run = 0  # consecutive rows refused with 401/403
        self.leading_not_found: int | None = 0  # rows answered 404 before any other answer; None: another came
        self._admitted = 0
        # Gated rows (the canary, the limit) not final yet: bounded by the engine's queues.
        self._gate_size = max(rules.canary, rules.limit or 0)
        self._pending: set[int] = set()
        self._all_final = asyncio.Event()
        self._in_canary = rules.canary > 0

    @property
    def _stopping(self) -> bool:
        return self._stop.is_set

    # -- the gate (reader side) ----------------------------------------------------------------

    async def admit(self, job: Job) -> None:
        """Returns when `job` may be queued; the engine checks whether the job is stopping after."""
        rules = self.rules
        if self._in_canary and self._admitted == rules.canary:
            await self._wait_pending()
            if self._stopping:
                return
            self._in_canary = False
            log.info("canary_passed", rows=rules.canary)
        if rules.limit is not None and self._admitted == rules.limit:
            await self._wait_pending()
            if not self._stopping:
                self._halt(ROW_CAP, f"not attempted: --limit {rules.limit} was reached")
            return
        self._admitted += 1
        if self._admitted <= self._gate_size:
            self._pending.add(job.line)

    async def _wait_pending(self) -> None:
        while self._pending:
            self._all_final.clear()
            await self._all_final.wait()

    # -- the hook (writer side) ----------------------------------------------------------------

    def observe(self, result: Result) -> None:
        if self._pending:
            self._pending.discard(result.line)
            if not self._pending:
                self._all_final.set()
        if result.outcome not in SENT_OUTCOMES or not result.attempts:
            return
        failed = result.outcome is Outcome.FAILED
        self.sent += 1
        self.failed += failed
        if failed and result.http_status in AUTH_STATUSES:
            self.auth_run += 1
        elif result.http_status is not None:
            self.auth_run = 0
        if self.leading_not_found is not None:
            self.leading_not_found = self.leading_not_found + 1 if failed and result.http_status == 404 else None
        if not failed or self._stopping:
            return
        rules = self.rules
        if self._in_canary:
            self._trip("canary", f"canary row at line {result.line} failed ({_answer(result)})")
        elif rules.max_consecutive_auth_failures and self.auth_run >= rules.max_consecutive_auth_failures:
            self._trip("auth_failures",
                       f"{self.auth_run} rows in a row were refused with 401/403 (last: "
                       f"{_answer(result)}): the credentials or permissions are wrong")
        elif rules.max_leading_not_found and (self.leading_not_found or 0) >= rules.max_leading_not_found:
            self._trip("not_found",
                       f"the first {self.leading_not_found} rows sent all answered 404 (not found): is the "
                       f"project id {result.project_id} right (and the endpoint's region)? The project "
                       "holds none of these snapshots")
        elif self.sent >= rules.min_tasks and self.failed > rules.max_failure_rate * self.sent:
            self._trip("failure_rate",
                       f"{self.failed} of {self.sent} rows sent failed, more than "
                       f"--max-failure-rate {rules.max_failure_rate:g}")

    def _trip(self, reason: str, why: str) -> None:
        # Rows, not requests: the summary's `requests` also counts retries and the credential check.
        log.error("safety_stop", reason=reason, why=why, rows_sent=self.sent, rows_failed=self.failed)
        self._halt(reason, f"not attempted: the job stopped itself: {why}")

    def _halt(self, reason: str, message: str) -> None:
        self._stop.request(reason, Outcome.NOT_ATTEMPTED, message)


def _answer(result: Result) -> str:
    status = f"HTTP {result.http_status}" if result.http_status else "no answer"
    return f"{status} {result.error_code}" if result.error_code else status
