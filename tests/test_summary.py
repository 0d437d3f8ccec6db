"""`snaprelabel summary`: a report read back as counts, errors, retries, latency, rate and the next
command, for finished, resumed, JSON Lines and large reports, made by real jobs against the
simulator (or, for the large one, by the report writer itself)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest

from helpers import PROJECT, TOKEN, relabel_targets, run_cli, write_jobs
from helpers import run_jobs_file as run
from worker.report import ReportWriter
from worker.results import Outcome, Result
from worker.simulator import Fault

GHOST = "00000000-0000-4000-8000-000000000000"


def summary_json(report):
    done = run_cli("summary", str(report), "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def failed_job(sim, tmp_path, **overrides):
    """40 rows: 3 whose snapshot the server says is gone (404), 1 invalid, 1 ghost (404)."""
    targets = relabel_targets(sim.snapshots, 40)
    gone = sorted(targets)[:3]
    sim.set_always_fail({sid: "404" for sid in gone})
    jobs = write_jobs(tmp_path / "jobs.csv", targets, [["bad-id", "x"], [GHOST, "ghost"]])
    report = tmp_path / ("r.jsonl" if overrides.get("report_format") == "jsonl" else "r.csv")
    result = await run(sim, jobs, report, **overrides)
    assert result.exit_code == 1
    return jobs, report, gone


async def test_summary_counts_outcomes_errors_projects_and_says_how_to_retry(sim, tmp_path):
    jobs, report, gone = await failed_job(sim, tmp_path)
    data = summary_json(report)
    assert data["status"] == "finished" and data["lines"] == 42 and data["rows"] == 42
    assert {k: v for k, v in data["outcomes"].items() if v} == {"applied": 37, "failed": 4, "rejected": 1}
    errors = {code: (g["count"], g["http_status"], g["first_lines"]) for code, g in data["errors"].items()}
    assert errors == {"http_404": (3, 404, [2, 3, 4]), "itemNotFound": (1, 404, [43]),
                      "invalid_uuid": (1, None, [42])}
    assert data["errors"]["itemNotFound"]["example"] == f"Snapshot {GHOST} could not be found."
    assert data["projects"] == {PROJECT: {"applied": 37, "failed": 4, "rejected": 1}}
    lat = data["latency_ms"]
    assert 0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert sum(b["count"] for b in data["latency_histogram"]) == 41  # every row sent has a latency
    assert sum(b["rows"] for b in data["rate"]["buckets"]) == 42
    assert data["next"][0] == f"snaprelabel retry {report} -o {tmp_path / 'r.retry.csv'}"
    assert data["next"][2] == f"or both at once: snaprelabel run --retry-from {report}"

    text = run_cli("summary", str(report))
    assert text.returncode == 0, text.stderr
    assert "outcomes: applied 37, rejected 1, failed 4" in text.stdout
    assert "  http_404: 3, HTTP 404, lines 2, 3, 4: Not Found" in text.stdout
    assert "latency: p50 " in text.stdout and f"snaprelabel retry {report}" in text.stdout


async def test_summary_counts_retries_and_throttling(sim, tmp_path):
    sim.set_faults([Fault("429", 0.3), Fault("503", 0.2)])
    targets = relabel_targets(sim.snapshots, 60)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    report = tmp_path / "r.csv"
    await run(sim, jobs, report, max_attempts=2)
    rows = (tmp_path / "r.csv").read_text().splitlines()[1:]
    data = summary_json(report)
    assert data["retries"]["rows_retried"] > 0 and data["retries"]["extra_attempts"] >= data["retries"]["rows_retried"]
    throttled = sum(1 for r in rows if ",429," in r)
    assert data["throttled_rows"] == throttled
    assert sum(b["throttled"] for b in data["rate"]["buckets"]) == throttled
    assert sum(b["retried"] for b in data["rate"]["buckets"]) == data["retries"]["rows_retried"]


async def test_a_resumed_report_counts_each_lines_final_row_once(sim, tmp_path):
    targets = relabel_targets(sim.snapshots, 30)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    report = tmp_path / "r.csv"
    await run(sim, jobs, report, limit=10, concurrency=1)  # 20 rows not_attempted
    before = summary_json(report)
    assert before["outcomes"]["applied"] == 10 and before["outcomes"]["not_attempted"] == 20
    assert f"snaprelabel retry {report} -o {tmp_path / 'r.retry.csv'}" in before["next"]

    await run(sim, jobs, report, resume=True)

    data = summary_json(report)
    assert data["rows"] == 50 and data["lines"] == 30  # 20 superseded rows, counted once each
    assert {k: v for k, v in data["outcomes"].items() if v} == {"applied": 30}
    assert not data["next"]


async def test_a_report_still_being_written_is_summarised_without_its_torn_tail(sim, tmp_path):
    jobs, report, _ = await failed_job(sim, tmp_path)
    records = report.read_bytes().splitlines(keepends=True)
    report.write_bytes(b"".join(records[:21]) + b"22,0123")  # 20 rows, and one cut off
    data = summary_json(report)
    assert data["rows"] == 20 and data["lines"] == 20


async def test_json_lines_report(sim, tmp_path):
    jobs, report, gone = await failed_job(sim, tmp_path, report_format="jsonl")
    data = summary_json(report)
    assert data["format"] == "jsonl"
    assert {k: v for k, v in data["outcomes"].items() if v} == {"applied": 37, "failed": 4, "rejected": 1}


def test_a_file_that_is_not_a_report_is_refused_in_one_line(tmp_path):
    other = tmp_path / "jobs.csv"
    other.write_text("snapshot_id,name\nx,y\n")
    done = run_cli("summary", str(other))
    assert done.returncode == 2 and "not a snaprelabel report" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def synthetic_report(path, rows):
    """`rows` rows over ~3 hours, 1 in 50 failed, 1 in 20 throttled once, as the report writer writes them."""
    writer = ReportWriter(str(path))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    batch = []
    for i in range(rows):
        failed = i % 50 == 0
        batch.append(Result(
            i + 2, f"{i:08x}-0000-4000-8000-000000000000", PROJECT, f"n{i}", None,
            Outcome.FAILED if failed else Outcome.APPLIED, http_status=503 if failed else 200,
            error_code="HTTP.503" if failed else None, error_message="busy" if failed else None,
            attempts=2 if i % 20 == 0 else 1, latency_ms=float(20 + i % 300),
            finished_at=(start + timedelta(milliseconds=i * 100)).isoformat().replace("+00:00", "Z")))
        if len(batch) == 1000:
            writer.write_batch(batch)
            batch = []
    writer.write_batch(batch)
    writer.close()


def test_a_100k_row_report_gives_a_bounded_summary(tmp_path):
    report = tmp_path / "big.csv"
    synthetic_report(report, 100_000)
    done = run_cli("summary", str(report), "--format", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["outcomes"]["failed"] == 2000 and data["outcomes"]["applied"] == 98_000
    assert data["errors"]["HTTP.503"]["first_lines"] == [2, 52, 102, 152, 202]
    assert data["retries"]["rows_retried"] == 5000
    assert len(data["rate"]["buckets"]) <= 120 and data["rate"]["bucket_s"] == 120
    assert abs(data["rate"]["buckets"][1]["per_s"] - 10.0) < 0.01
    assert len(done.stdout) < 40_000
    text = run_cli("summary", str(report))
    assert text.returncode == 0 and len(text.stdout) < 4_000


class Page(HTMLParser):
    """The tags of an HTML page, and every reference it makes to something outside itself."""

    def __init__(self):
        super().__init__()
        self.tags: Counter[str] = Counter()
        self.classes: Counter[str] = Counter()
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        for name, value in attrs:
            if name == "class":
                self.classes[f"{tag}.{value}"] += 1
            if name in ("src", "href", "xlink:href", "action", "data") and value:
                self.external.append(f"{tag} {name}={value}")
            if name == "style" and value and "url(" in value:
                self.external.append(f"{tag} style={value}")
        if tag in ("script", "link", "iframe", "object", "embed", "img"):
            self.external.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def parse_page(path):
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


async def test_the_html_report_is_one_self_contained_file_with_the_counts_and_plots(sim, tmp_path):
    sim.set_faults([Fault("429", 0.4)])
    targets = relabel_targets(sim.snapshots, 60)
    jobs = write_jobs(tmp_path / "jobs.csv", targets, [["bad-id", "x"]])
    report = tmp_path / "r.csv"
    await run(sim, jobs, report, rate=500, max_attempts=2)
    data = summary_json(report)
    assert data["throttled_rows"] > 0 and data["rate_limit"] == 500  # some rows ran out of attempts on a 429

    done = run_cli("summary", str(report), "--html", str(tmp_path / "job.html"))

    assert done.returncode == 0, done.stderr
    page = parse_page(tmp_path / "job.html")
    html = (tmp_path / "job.html").read_text(encoding="utf-8")
    assert page.external == [] and "http://" not in html and "https://" not in html and "@import" not in html
    assert page.classes["svg.outcomes"] == page.classes["svg.rate"] == page.classes["svg.latency"] == 1
    assert page.classes["rect.mark"] > 0  # the throttled and retried rows are marked
    assert page.classes["line.limit"] == 1 and page.classes["polyline.requests"] == 1
    text = " ".join(page.text)
    outcomes = data["outcomes"]
    assert "rows ended throttled (HTTP 429)" in text and f"{data['throttled_rows']} rows ended throttled" in text
    for outcome, count in outcomes.items():
        if count:
            assert f"{outcome} {count}" in " ".join(t.strip() for t in page.text if t.strip())
    assert "invalid_uuid" in text and f"snaprelabel retry {report}" in text


def test_the_html_report_of_100k_rows_stays_small(tmp_path):
    report = tmp_path / "big.csv"
    synthetic_report(report, 100_000)
    done = run_cli("summary", str(report), "--html", str(tmp_path / "big.html"))
    assert done.returncode == 0, done.stderr
    size = (tmp_path / "big.html").stat().st_size
    assert size < 100_000, size
    page = parse_page(tmp_path / "big.html")
    assert page.tags["rect"] < 400 and page.external == []


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed "
                                                            "(apt-get install chromium) to render the page")
async def test_chromium_renders_the_html_report(sim, tmp_path):
    _, report, _ = await failed_job(sim, tmp_path)
    assert run_cli("summary", str(report), "--html", str(tmp_path / "job.html")).returncode == 0
    shot = tmp_path / "job.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,1600", (tmp_path / "job.html").as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_a_terminal_that_cannot_show_block_characters_gets_no_sparkline(tmp_path):
    report = tmp_path / "r.csv"
    synthetic_report(report, 1000)
    plain = run_cli("summary", str(report), env={"PYTHONIOENCODING": "ascii"})
    assert plain.returncode == 0, plain.stderr
    assert "rate: " in plain.stdout and "\\u258" not in plain.stdout  # no escaped block characters
    assert "█" in run_cli("summary", str(report), env={"PYTHONIOENCODING": "utf-8"}).stdout


def test_run_html_writes_the_job_report_when_the_job_ends(sim_thread, tmp_path):
    sim = sim_thread(snapshots=40)
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 40), [["bad-id", "x"]])
    report, html = tmp_path / "r.csv", tmp_path / "job.html"
    done = run_cli("run", str(jobs), "--endpoint", sim.url, "--project-id", PROJECT, "--rate", "0",
                   "--report", str(report), "--html", str(html), env={"SNAPRELABEL_TOKEN": TOKEN})
    assert done.returncode == 1, done.stderr  # the bad row: the job's own exit code is kept
    page = parse_page(html)
    text = " ".join(t.strip() for t in page.text if t.strip())
    assert page.external == [] and "applied 40" in text and "rejected 1" in text
    # The HTML may not be the jobs file or the report (a typo would overwrite either).
    refused = run_cli("run", str(jobs), "--endpoint", sim.url, "--project-id", PROJECT,
                      "--report", str(tmp_path / "r2.csv"), "--html", str(jobs), env={"SNAPRELABEL_TOKEN": TOKEN})
    assert refused.returncode == 2 and "--html" in refused.stderr
