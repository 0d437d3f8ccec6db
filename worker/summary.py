"""What happened in a job, read from its report: counts by outcome, error and project, retries
and throttling, latency percentiles, the rate over time, and what to do next.

It reads the report the way --resume does (worker/journal.py): a line's answer is its final row
when it has one, else its last row; a torn tail (a report still being written, or cut by a crash)
is left out. Every row is a request that finished, so the rate, latency and retry figures count
every row, superseded ones included. One pass, bounded memory but for the latencies (8 bytes a
row) and the lines that have no final row yet; the output is bounded (buckets, the first few
lines of each error).
"""

from __future__ import annotations

import shlex
from array import array
from bisect import bisect_right, insort
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .journal import LineSet, Record, detect_format, iter_records
from .manifest import read_manifest
from .quota import Rate, rate_text
from .results import Outcome

SHOWN_LINES = 5  # input lines listed per error code
MAX_BUCKETS = 120  # points of the rate series, whatever the job's length
HISTOGRAM_BINS = 30
THROTTLE_CODE = "APIGW.0308"  # Huawei's API gateway: request over the limit (HTTP 429)
RETRYABLE = (Outcome.FAILED, Outcome.INTERRUPTED, Outcome.NOT_ATTEMPTED)
# Widths (seconds) a rate series may use: a whole number of seconds, minutes or hours.
_WIDTHS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)


@dataclass
class ErrorGroup:
    count: int = 0
    http_status: int | None = None
    example: str = ""
    lines: list[int] = field(default_factory=list)


@dataclass(slots=True)
class _Answer:
    """What the summary keeps of a line's answer."""

    outcome: Outcome
    code: str | None
    status: int | None
    message: str
    project: str
    region: str | None


@dataclass
class JobSummary:
    report: str
    fmt: str
    manifest: dict[str, Any] | None
    rows: int = 0  # complete records, superseded ones included
    outcomes: Counter[str] = field(default_factory=Counter)  # one answer per input line
    errors: dict[str, ErrorGroup] = field(default_factory=dict)
    projects: dict[str, Counter[str]] = field(default_factory=dict)
    regions: dict[str, Counter[str]] = field(default_factory=dict)
    retried_rows: int = 0  # rows that took more than one attempt
    extra_attempts: int = 0
    throttled_rows: int = 0  # rows whose last answer was 429 / APIGW.0308
    latencies: array[float] = field(default_factory=lambda: array("d"))
    per_second: Counter[int] = field(default_factory=Counter)  # epoch second -> rows finished
    throttled_per_second: Counter[int] = field(default_factory=Counter)
    retried_per_second: Counter[int] = field(default_factory=Counter)
    attempts_per_second: Counter[int] = field(default_factory=Counter)  # requests, by when their row finished
    _sorted: list[float] = field(default_factory=list, repr=False)

    @property
    def lines(self) -> int:
        return sum(self.outcomes.values())

    @property
    def status(self) -> str:
        return str((self.manifest or {}).get("status") or "unknown (no manifest)")

    @property
    def rate_limit(self) -> Rate | None:
        """The job's --rate (per second, and as written: 600/min), when it had a fixed one."""
        rate = ((self.manifest or {}).get("settings") or {}).get("rate")
        try:
            limit = Rate.parse(rate) if rate != "auto" else None
        except ValueError:
            return None
        return limit if limit else None

    @property
    def retryable(self) -> int:
        return sum(self.outcomes[str(o)] for o in RETRYABLE)

    def _sorted_latencies(self) -> list[float]:
        """Sorted once, however many figures are drawn from them."""
        if len(self._sorted) != len(self.latencies):
            self._sorted = sorted(self.latencies)
        return self._sorted

    def percentiles(self) -> dict[str, float] | None:
        values = self._sorted_latencies()
        if not values:
            return None
        return {name: values[min(len(values) - 1, max(0, round(q * len(values)) - 1))]
                for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))} | {"max": values[-1]}

    def histogram(self) -> list[dict[str, float]]:
        """Latency counts in equal bins from 0 to the p99 (the tail above it in the last bin)."""
        values = self._sorted_latencies()
        if not values:
            return []
        top = values[min(len(values) - 1, round(0.99 * len(values)))] or values[-1] or 1.0
        width = top / HISTOGRAM_BINS
        bins, start = [], 0
        for i in range(HISTOGRAM_BINS):
            end = len(values) if i == HISTOGRAM_BINS - 1 else bisect_right(values, width * (i + 1))
            bins.append({"from_ms": round(width * i, 1), "to_ms": round(width * (i + 1), 1),
                         "count": end - start})
            start = end
        return bins

    def series(self) -> dict[str, Any]:
        """Rows finished per second over the job, in at most MAX_BUCKETS buckets."""
        if not self.per_second:
            return {"bucket_s": 1, "start": None, "buckets": []}
        first, last = min(self.per_second), max(self.per_second)
        span = last - first + 1
        width = next((w for w in _WIDTHS if span / w <= MAX_BUCKETS), -(-span // MAX_BUCKETS))
        buckets: list[dict[str, Any]] = []
        for start in range(first - first % width, last + 1, width):
            rows = sum(self.per_second.get(s, 0) for s in range(start, start + width))
            throttled = sum(self.throttled_per_second.get(s, 0) for s in range(start, start + width))
            retried = sum(self.retried_per_second.get(s, 0) for s in range(start, start + width))
            attempts = sum(self.attempts_per_second.get(s, 0) for s in range(start, start + width))
            buckets.append({"t": start - first, "rows": rows, "per_s": round(rows / width, 2),
                            "requests_per_s": round(attempts / width, 2), "throttled": throttled,
                            "retried": retried})
        return {"bucket_s": width, "start": _iso(first), "buckets": buckets}

    def last_run(self) -> dict[str, Any] | None:
        """The request figures the manifest keeps of the last run (the report holds each row's
        last answer only, not the 429s that a retry got past)."""
        manifest = self.manifest or {}
        figures = {key: manifest.get(key) for key in ("requests", "retries", "throttled", "requests_per_s")}
        return figures if all(isinstance(v, int | float) for v in figures.values()) else None

    def next_steps(self) -> list[str]:
        steps = []
        if self.retryable:
            out = _retry_name(self.report)
            steps.append(f"snaprelabel retry {shlex.quote(self.report)} -o {shlex.quote(out)}")
            steps.append(f"snaprelabel run {shlex.quote(out)} --report "
                         f"{shlex.quote(_retry_name(self.report, 'report'))}")
            steps.append(f"or both at once: snaprelabel run --retry-from {shlex.quote(self.report)}")
        if self.outcomes[str(Outcome.REJECTED)]:
            steps.append("rejected rows were never sent: fix them in the jobs file (see the errors above)")
        if self.status == "running":
            steps.append("the manifest says the job is still running (or was killed): summarise again later, "
                         "or continue it with snaprelabel run --resume")
        return steps

    def as_dict(self) -> dict[str, Any]:
        return {
            "report": self.report, "format": self.fmt, "status": self.status,
            "rows": self.rows, "lines": self.lines,
            "outcomes": {str(o): self.outcomes[str(o)] for o in Outcome},
            "errors": {code: {"count": g.count, "http_status": g.http_status, "example": g.example,
                              "first_lines": g.lines}
                       for code, g in sorted(self.errors.items(), key=lambda kv: -kv[1].count)},
            "projects": {p: dict(c) for p, c in sorted(self.projects.items())},
            **({"regions": {r: dict(c) for r, c in sorted(self.regions.items())}} if self.regions else {}),
            "retries": {"rows_retried": self.retried_rows, "extra_attempts": self.extra_attempts},
            "throttled_rows": self.throttled_rows,
            "last_run": self.last_run(),
            "latency_ms": self.percentiles(),
            "latency_histogram": self.histogram(),
            "rate_limit": self.rate_limit,
            "rate": self.series(),
            "next": self.next_steps(),
        }


def summarise(path: str, fmt: str | None = None) -> JobSummary:
    """Raises JournalError (not a report, or damaged) and OSError."""
    fmt = fmt or detect_format(path)
    summary = JobSummary(path, fmt, read_manifest(path))
    final = LineSet()
    pending: dict[int, _Answer] = {}  # lines with no final row yet: their last row
    seconds: dict[str, int | None] = {}  # "2026-01-01T10:00:00" -> epoch second, parsed once
    for record in iter_records(path, fmt):
        summary.rows += 1
        fields = record.fields
        attempts = _int(fields.get("attempts")) or 0
        status = _int(fields.get("http_status"))
        code = _text(fields.get("error_code")) or None
        throttled = status == 429 or code == THROTTLE_CODE
        second = _second(_text(fields.get("finished_at")), seconds)
        if attempts > 1:
            summary.retried_rows += 1
            summary.extra_attempts += attempts - 1
        if throttled:
            summary.throttled_rows += 1
        if second is not None:
            summary.per_second[second] += 1
            summary.attempts_per_second[second] += attempts
            if throttled:
                summary.throttled_per_second[second] += 1
            if attempts > 1:
                summary.retried_per_second[second] += 1
        latency = _float(fields.get("latency_ms"))
        if latency is not None:
            summary.latencies.append(latency)
        if record.outcome.final:
            if record.line in final:
                continue  # not written by --resume alone: the first final row stands, as for undo
            final.add(record.line)
            if pending:
                pending.pop(record.line, None)
            if record.outcome.success and not fields.get("region"):  # the usual row, counted quickly
                outcome = str(record.outcome)
                summary.outcomes[outcome] += 1
                project = fields.get("project_id") or "(none)"
                counts = summary.projects.get(project)
                if counts is None:
                    counts = summary.projects[project] = Counter()
                counts[outcome] += 1
            else:
                _count(summary, record.line, _answer(record, code, status))
        elif record.line not in final:
            pending[record.line] = _answer(record, code, status)
    for line, answer in sorted(pending.items()):
        _count(summary, line, answer)
    return summary


def _answer(record: Record, code: str | None, status: int | None) -> _Answer:
    fields = record.fields
    region = _text(fields.get("region")) or None
    return _Answer(record.outcome, code, status, _text(fields.get("error_message")),
                   _text(fields.get("project_id")) or "(none)", region)


def _count(summary: JobSummary, line: int, answer: _Answer) -> None:
    outcome = str(answer.outcome)
    summary.outcomes[outcome] += 1
    summary.projects.setdefault(answer.project, Counter())[outcome] += 1
    if answer.region:
        summary.regions.setdefault(answer.region, Counter())[outcome] += 1
    if answer.outcome.success or not (answer.code or answer.status or answer.message):
        return
    key = answer.code or (f"HTTP {answer.status}" if answer.status else "(no code)")
    group = summary.errors.setdefault(key, ErrorGroup(http_status=answer.status, example=answer.message[:300]))
    group.count += 1
    if len(group.lines) < SHOWN_LINES or line < group.lines[-1]:  # the first lines, whatever the order
        insort(group.lines, line)
        del group.lines[SHOWN_LINES:]


def _retry_name(report: str, kind: str = "jobs") -> str:
    stem = report.rsplit(".", 1)[0] if "." in report.rsplit("/", 1)[-1] else report
    return f"{stem}.retry.csv" if kind == "jobs" else f"{stem}.retry-report.csv"


def _second(stamp: str, cache: dict[str, int | None]) -> int | None:
    key = stamp[:19]  # whole seconds: finished_at is ISO 8601, UTC
    if key not in cache:
        try:
            cache[key] = int(datetime.fromisoformat(key + "+00:00").timestamp())
        except ValueError:
            cache[key] = None
    return cache[key]


def _iso(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).isoformat().replace("+00:00", "Z")


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _int(value: object) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(str(value)) if not isinstance(value, int | float) else int(value)
    except (TypeError, ValueError):
        return None


def _float(value: object) -> float | None:
    try:
        return float(str(value)) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def render_text(summary: JobSummary, unicode: bool = True) -> str:
    """`unicode`: the terminal shows block characters (the rate's sparkline is left out if not)."""
    data = summary.as_dict()
    out = [f"report {summary.report} ({summary.fmt}), job {summary.status}: "
           f"{summary.lines} input lines answered, {summary.rows} rows"]
    out.append("outcomes: " + ", ".join(f"{k} {v}" for k, v in data["outcomes"].items() if v))
    if data["errors"]:
        out.append("errors (by code: count, HTTP status, first lines, example):")
        for code, g in data["errors"].items():
            lines = ", ".join(map(str, g["first_lines"])) + (", …" if g["count"] > len(g["first_lines"]) else "")
            out.append(f"  {code}: {g['count']}, HTTP {g['http_status'] or '-'}, lines {lines}: {g['example']}")
    for title, groups in (("projects", data["projects"]), ("regions", data.get("regions") or {})):
        shown = list(groups.items())[:20]
        if shown:
            out.append(f"{title}:")
            out.extend(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()) for name, counts in shown)
            if len(groups) > len(shown):
                out.append(f"  … and {len(groups) - len(shown)} more (--format json lists them all)")
    retries = data["retries"]
    out.append(f"retries: {retries['rows_retried']} rows took more than one attempt "
               f"({retries['extra_attempts']} extra attempts); {data['throttled_rows']} rows ended throttled (429)")
    if data["last_run"]:
        run = data["last_run"]
        out.append(f"last run (manifest): {run['requests']} requests, {run['retries']} retries, "
                   f"{run['throttled']} throttled answers (429), {run['requests_per_s']:g} requests/s")
    lat = data["latency_ms"]
    if lat:
        out.append(f"latency: p50 {lat['p50']:g} ms, p90 {lat['p90']:g} ms, p99 {lat['p99']:g} ms, "
                   f"max {lat['max']:g} ms")
    rate = data["rate"]
    if rate["buckets"]:
        peak = max(b["per_s"] for b in rate["buckets"])
        limit = f", limit {rate_text(summary.rate_limit)}" if summary.rate_limit else ""
        span = rate["buckets"][-1]["t"] + rate["bucket_s"]
        out.append(f"rate: {summary.rows / span:.1f} rows/s over {span} s from {rate['start']} "
                   f"(peak {peak:g}/s in {rate['bucket_s']} s buckets{limit})")
        if unicode:
            out.append("  " + _sparkline([b["per_s"] for b in rate["buckets"]]))
    if data["next"]:
        out.append("next:")
        out.extend(f"  {step}" for step in data["next"])
    return "\n".join(out) + "\n"


def _sparkline(values: list[float]) -> str:
    marks = " ▁▂▃▄▅▆▇█"
    top = max(values) or 1.0
    return "".join(marks[round(v / top * (len(marks) - 1))] for v in values)
