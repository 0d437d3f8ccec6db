"""Re-running what a job did not finish: the jobs of a report's failed, interrupted or
not-attempted rows, with their original targets, ready for `snaprelabel run`.

A line's answer is read as --resume reads it (worker/journal.py): its final row, else its last
row. The targets come from the report's rows, which hold the validated values of the input. The
report's manifest fingerprints the input: when that file is still there and has changed since
(not merely grown), its rows may no longer be what the operator wants, and the retry is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .jobs import JOB_COLUMNS
from .jobs_file import write_jobs
from .journal import JournalError, LineSet, Record, detect_format, iter_records
from .manifest import file_digest, manifest_path, read_manifest
from .results import Outcome
from .stamps import now_iso

RETRY_OUTCOMES = (Outcome.FAILED, Outcome.INTERRUPTED, Outcome.NOT_ATTEMPTED)
CHOICES = (*RETRY_OUTCOMES, Outcome.DRY_RUN)  # a dry run's rows are valid: they can be run for real


@dataclass
class Selection:
    outcomes: frozenset[Outcome]
    codes: frozenset[str] = frozenset()  # error codes (or HTTP statuses) to keep; empty: any
    rows: int = 0  # complete records read
    by_outcome: dict[str, int] = field(default_factory=dict)  # the jobs written, by outcome

    def wants(self, record: Record) -> bool:
        if record.outcome not in self.outcomes:
            return False
        if not self.codes:
            return True
        fields = record.fields
        return any(str(fields.get(key) or "") in self.codes for key in ("error_code", "http_status"))


def jobs_to_retry(records: Iterable[Record], selection: Selection, empty_is_known: bool
                  ) -> list[dict[str, str | None]]:
    """The selected lines' jobs, in input line order."""
    final = LineSet()
    chosen: dict[int, tuple[Outcome, dict[str, str | None]]] = {}  # line -> its answer's job
    for record in records:
        selection.rows += 1
        if record.outcome.final:
            if record.line in final:
                continue  # not written by --resume alone: the first final row stands
            final.add(record.line)
        elif record.line in final:
            continue  # superseded by the line's final row
        if selection.wants(record):
            chosen[record.line] = (record.outcome, _job(record, empty_is_known))
        else:
            chosen.pop(record.line, None)  # a later row of the line answers it otherwise
    jobs = []
    for line in sorted(chosen):
        outcome, job = chosen[line]
        selection.by_outcome[str(outcome)] = selection.by_outcome.get(str(outcome), 0) + 1
        jobs.append(job)
    return jobs


def _job(record: Record, empty_is_known: bool) -> dict[str, str | None]:
    """The row's targets; a CSV report's empty cell is a field the job did not set."""
    job: dict[str, str | None] = {}
    for column in JOB_COLUMNS:
        value: Any = record.fields.get(column)
        job[column] = None if value is None or (value == "" and not empty_is_known) else str(value)
    return job


def check_input(report: str, manifest: dict[str, Any] | None) -> str | None:
    """Raises ConfigError when the job's input is still there and changed since the report was
    begun. Returns a note for stderr when it cannot be checked (stdin, moved away), else None."""
    if manifest is None:
        return (f"retry: {report} has no readable manifest ({report}.manifest.json): the input "
                "could not be checked; the jobs come from the report's rows")
    recorded = manifest.get("input") or {}
    path, size, sha = recorded.get("path"), recorded.get("size"), recorded.get("sha256")
    if not path or path == "-" or not sha:
        return "retry: the job read its rows from stdin: the jobs come from the report's rows"
    found = next((p for p in (path, os.path.join(os.path.dirname(report), os.path.basename(path)))
                  if os.path.isfile(p)), None)
    if found is None:
        return f"retry: the job's input {path} is gone: the jobs come from the report's rows"
    digest = file_digest(found)
    grew = (digest is not None and isinstance(size, int) and digest[0] > size
            and file_digest(found, limit=size) == (size, sha))
    if digest is not None and digest[1] != sha and not grew:
        raise ConfigError(
            f"{found} has changed since {report} was begun (it was sha256 {sha[:12]}…, {size} bytes; "
            f"it is now sha256 {digest[1][:12]}…, {digest[0]} bytes): the report's rows may no longer "
            "be the jobs you want; run the changed jobs file itself (with a new report), or put the "
            "old one back")
    return None


def read_retry_jobs(report: str, selection: Selection) -> tuple[list[dict[str, str | None]], str | None, str]:
    """The jobs to run again from `report`, a note for stderr (the input is gone), and the
    report's format. Raises ConfigError (unusable report, changed input)."""
    try:
        fmt = detect_format(report)
        manifest = read_manifest(report)
        note = check_input(report, manifest)
        jobs = jobs_to_retry(iter_records(report, fmt), selection, empty_is_known=fmt == "jsonl")
    except JournalError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {report}: {exc.strerror or exc}") from None
    if selection.rows == 0 and (manifest or {}).get("tool") != "snaprelabel":
        raise ConfigError(f"{report} holds no report rows: not a snaprelabel report")
    return jobs, note, fmt


def write_retry_jobs(report: str, selection: Selection, path: str) -> int:
    """The retry jobs file of `report` at `path`, in the report's format, whole or not at all;
    the number of jobs. Raises ConfigError (unusable report, changed input)."""
    jobs, _, fmt = read_retry_jobs(report, selection)
    return write_jobs(jobs, path, fmt)


def retry_paths(report: str, report_format: str) -> tuple[str, str]:
    """(jobs file, report) of the next retry of `report`, beside it: REPORT-STEM.retry-N.*,
    N the first number neither is taken for."""
    stem = report.rsplit(".", 1)[0] if "." in os.path.basename(report) else report
    ext = "jsonl" if report.endswith(".jsonl") else "csv"
    n = 1
    while True:
        jobs, second = f"{stem}.retry-{n}.jobs.{ext}", f"{stem}.retry-{n}.{report_format}"
        if not (os.path.lexists(jobs) or os.path.lexists(second)):
            return jobs, second
        n += 1


def link_retry(report: str, second: str, jobs: str) -> None:
    """Records in the first report's manifest that `second` retried its rows (the report itself
    is never rewritten). Atomic, like every manifest write; no manifest: nothing to link."""
    manifest = read_manifest(report)
    if manifest is None:
        return
    retried = manifest.get("retried_by")
    manifest["retried_by"] = [*(retried if isinstance(retried, list) else []),
                              {"report": second, "jobs": jobs, "at": now_iso()}]
    path = manifest_path(report)
    fd, tmp = tempfile.mkstemp(prefix=f"{os.path.basename(path)}.", suffix=".tmp", dir=os.path.dirname(path) or ".")
    try:
        with open(fd, "w", encoding="utf-8") as f:
            json.dump(manifest, f, ensure_ascii=False, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
