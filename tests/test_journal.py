"""The report read back as a journal: final rows per line, torn tails found by whole records and
cut off, damage refused; and the packed live listing behind --skip-unchanged."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys

import pytest

from helpers import ROOT
from worker.journal import JournalError, LineSet, iter_records, lock_report, open_report, read_journal
from worker.live import SnapshotTable
from worker.report import COLUMNS, ReportWriter
from worker.results import Outcome, Result

SID = "aaaaaaaa-0000-4000-8000-{:012d}"


def result(line: int, outcome: Outcome = Outcome.APPLIED, name: str = "n", **fields) -> Result:
    return Result(line, SID.format(line), "p", name, None, outcome, **fields)


def write_report(path, results, fmt="csv"):
    writer = ReportWriter(str(path), fmt)
    writer.write_batch(results)
    writer.close()
    return path


def test_final_rows_are_journaled_and_interrupted_ones_superseded(tmp_path):
    report = write_report(tmp_path / "r.csv", [
        result(2), result(3, Outcome.INTERRUPTED), result(4, Outcome.REJECTED),
        result(3, Outcome.APPLIED), result(5, Outcome.FAILED), result(6, Outcome.DRY_RUN),
    ])
    journal = read_journal(str(report), "csv")
    assert [line for line in range(10) if line in journal.final] == [2, 3, 4, 5]
    assert journal.counts == {Outcome.APPLIED: 2, Outcome.REJECTED: 1, Outcome.FAILED: 1}
    assert journal.records == 6 and journal.torn_bytes == 0


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_every_cut_of_the_last_record_is_found_and_repaired(tmp_path, fmt):
    """A crash may cut the last record anywhere, even inside a quoted field holding a newline:
    whatever the cut, exactly the complete records stay and the next append is clean."""
    rows = [result(2, name="plain"), result(3, name='two\nlines, "quoted"', error_message="a,b")]
    whole = write_report(tmp_path / f"whole.{fmt}", rows, fmt).read_bytes()
    first_end = len(whole) - len(_encoded(rows[1], fmt))
    for cut in range(first_end + 1, len(whole)):  # every byte of the last record
        path = tmp_path / f"cut.{fmt}"
        path.write_bytes(whole[:cut])
        journal = read_journal(str(path), fmt)
        assert (len(journal.final), journal.complete_size, journal.torn_bytes) == (
            1, first_end, cut - first_end), cut
        journal.repair()
        writer = ReportWriter(str(path), fmt, append=True)
        writer.write_batch([rows[1]])
        writer.close()
        assert path.read_bytes() == whole, cut


def _encoded(row: Result, fmt: str) -> bytes:
    cells = [getattr(row, c) for c in COLUMNS]
    if fmt == "jsonl":
        return (json.dumps(dict(zip(COLUMNS, cells, strict=True)), ensure_ascii=False) + "\n").encode()
    text = io.StringIO()
    csv.writer(text).writerow(cells)
    return text.getvalue().encode()


def test_a_header_cut_by_a_crash_is_cut_off_and_rewritten(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(b"line,snapshot_id,proj")
    journal = read_journal(str(path), "csv")
    assert journal.complete_size == 0 and journal.torn_bytes == 21
    journal.repair()
    ReportWriter(str(path), "csv", append=True).close()
    assert path.read_text().splitlines() == [",".join(COLUMNS)]


def test_zero_bytes_left_by_a_power_cut_are_a_torn_tail(tmp_path):
    path = write_report(tmp_path / "r.csv", [result(2), result(3)])
    size = path.stat().st_size
    with path.open("ab") as f:
        f.write(b"\0" * 4096)
    journal = read_journal(str(path), "csv")
    assert len(journal.final) == 2 and journal.torn_bytes == 4096 and journal.complete_size == size


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_damage_before_the_last_record_is_refused(tmp_path, fmt):
    path = write_report(tmp_path / f"r.{fmt}", [result(2), result(3), result(4)], fmt)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[-2] = lines[-2][:10] + b"\n"  # the middle record loses its end
    path.write_bytes(b"".join(lines))
    with pytest.raises(JournalError, match="damaged, not just cut off"):
        read_journal(str(path), fmt)


def test_a_file_that_is_not_a_report_is_refused(tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text("snapshot_id,name\nx,y\n")
    with pytest.raises(JournalError, match="not a snaprelabel report"):
        read_journal(str(path), "csv")


def test_two_final_rows_for_one_line_are_refused(tmp_path):
    path = write_report(tmp_path / "r.csv", [result(2), result(2, Outcome.FAILED)])
    with pytest.raises(JournalError, match="line 2 of the input has two final rows"):
        read_journal(str(path), "csv")


def test_records_keep_their_values_and_leave_the_torn_tail_out(tmp_path):
    path = write_report(tmp_path / "r.jsonl", [result(2, previous_name=""), result(3)], "jsonl")
    with path.open("ab") as f:
        f.write(b'{"line": 4, "outc')
    records = list(iter_records(str(path), "jsonl"))
    assert [r.line for r in records] == [2, 3]
    assert records[0].fields["previous_name"] == "" and records[0].fields["previous_description"] is None


def test_the_line_set_is_a_bitmap():
    lines = LineSet()
    for line in range(2, 1_000_002, 3):
        lines.add(line)
    lines.add(5)  # again
    assert len(lines) == 333_334
    assert 1_000_001 in lines and 1_000_000 not in lines and -1 not in lines and 10**9 not in lines
    assert sys.getsizeof(lines._bits) < 300_000  # bits, not a set of ints (~40 MB)


def test_the_live_table_finds_every_snapshot_and_only_those():
    table = SnapshotTable()
    snapshots = [{"id": SID.format(i), "name": f"snap-{i}" if i % 7 else None,
                  "description": "数据" * (i % 3), "metadata": {"__system__enableActive": "true"}
                  if i % 11 == 0 else {}} for i in range(5000)]
    snapshots.append({"id": "not-a-uuid", "name": "odd", "description": ""})
    for snap in snapshots:
        table.add(snap)
    table.add({"id": SID.format(3), "name": "renamed", "description": ""})  # a repeated id
    assert len(table) == 5001
    for i in (0, 1, 3, 7, 11, 4999):
        live = table.get(SID.format(i))
        assert live is not None
        assert live.name == ("renamed" if i == 3 else f"snap-{i}" if i % 7 else None)
        assert live.backup_owned == (i % 11 == 0 and i != 3)
        assert live.description == ("" if i == 3 else "数据" * (i % 3))
    assert table.get("not-a-uuid").name == "odd"
    assert table.get(SID.format(5000)) is None
    assert table.nbytes < 5001 * 60  # packed: ~40 bytes a snapshot plus its texts


# --- CSV injection: the report is safe in a spreadsheet and reads back exactly (issue 12) ---

FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-2", "@SUM(A1)", "\tx", "\rx", "'=x", "''", "'",
            "'abc", "plain", "a=b"]


def test_cells_a_spreadsheet_would_run_are_quoted_and_read_back_exactly(tmp_path):
    """Server-supplied texts (error_message, request_id, server_name) and the row's own values
    land in the report: none may reach a spreadsheet as a formula, and --resume and undo must
    read back exactly what was written, a value that really starts with a quote included."""
    rows = [result(i + 2, name=v, error_message=v, request_id=v, server_name=v, previous_name=v,
                   previous_description=v, outcome=Outcome.FAILED) for i, v in enumerate(FORMULAS)]
    path = write_report(tmp_path / "r.csv", rows)
    text_columns = ("name", "error_message", "request_id", "server_name", "previous_name",
                    "previous_description")
    with path.open(encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            for column in text_columns:
                assert not row[column].startswith(("=", "+", "-", "@", "\t", "\r")), (column, row[column])
    records = list(iter_records(str(path), "csv"))
    assert [[r.fields[c] for c in text_columns] for r in records] == [[v] * 6 for v in FORMULAS]
    assert len(read_journal(str(path), "csv").final) == len(FORMULAS)


def test_json_lines_reports_keep_values_as_they_are(tmp_path):
    path = write_report(tmp_path / "r.jsonl", [result(2, name="=1+2", error_message="-x")], "jsonl")
    assert json.loads(path.read_text())["name"] == "=1+2"


# --- the report file itself: created alone, locked before it is touched (issue 12) ---

# Opens the report as `snaprelabel run` does, writes 300 rows, then keeps it (and its lock) until
# the test lets go: a second process must never spoil what the first wrote.
HOLDER = """
import os, sys, time
from worker.journal import JournalError, open_report
from worker.results import Outcome, Result
path, go, release, overwrite = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
while not os.path.exists(go):
    time.sleep(0.001)
try:
    writer, lock = open_report(path, "csv", resume=False, overwrite=overwrite)
except JournalError as exc:
    print(f"refused: {exc}", flush=True)
    sys.exit(2)
for line in range(2, 302):
    sid = "aaaaaaaa-0000-4000-8000-%012d" % line
    writer.write_batch([Result(line, sid, "p", "n", None, Outcome.APPLIED)])
print("wrote", flush=True)
while not os.path.exists(release):
    time.sleep(0.001)
writer.close()
os.close(lock)
"""


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("trial", range(3))
def test_two_runs_started_together_on_a_new_report_one_wins_the_other_is_refused(tmp_path, overwrite, trial):
    path, go, release = tmp_path / "r.csv", tmp_path / "go", tmp_path / "release"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(go), str(release),
                              str(int(overwrite))], stdout=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]
    go.touch()
    first = [run.stdout.readline().strip() for run in runs]  # "wrote", or the loser's one line
    loser = runs[first.index(next(line for line in first if line.startswith("refused")))]
    assert loser.wait(timeout=60) == 2
    release.touch()
    assert sorted(run.wait(timeout=60) for run in runs) == [0, 2]
    assert sorted(line.split(":")[0] for line in first) == ["refused", "wrote"]
    refusal = next(line for line in first if line.startswith("refused"))
    assert str(path) in refusal and ("another snaprelabel" in refusal or "already exists" in refusal)
    journal = read_journal(str(path), "csv")
    assert len(journal.final) == 300 and journal.torn_bytes == 0 and b"\0" not in path.read_bytes()


def test_a_new_report_is_private_and_never_written_through_a_planted_link(tmp_path):
    target = tmp_path / "precious"
    target.write_text("keep me")
    os.symlink(target, tmp_path / "planted.csv")
    with pytest.raises(JournalError, match="already exists"):
        open_report(str(tmp_path / "planted.csv"), "csv")
    assert target.read_text() == "keep me"
    writer, lock = open_report(str(tmp_path / "r.csv"), "csv")
    writer.close()
    os.close(lock)
    assert stat.S_IMODE(os.stat(tmp_path / "r.csv").st_mode) == 0o600


def test_overwrite_and_resume_touch_an_existing_report_only_once_it_is_locked(tmp_path):
    path = write_report(tmp_path / "r.csv", [result(2), result(3)])
    held = lock_report(str(path))
    for resume in (False, True):
        with pytest.raises(JournalError, match="another snaprelabel process is writing this report"):
            open_report(str(path), "csv", resume=resume, overwrite=not resume)
    assert len(read_journal(str(path), "csv").final) == 2  # untouched
    writer, lock = open_report(str(path), "csv", resume=True, lock=held)
    writer.write_batch([result(4)])
    writer.close()
    assert len(read_journal(str(path), "csv").final) == 3  # appended
    writer, lock = open_report(str(path), "csv", overwrite=True, lock=held)
    writer.close()
    os.close(lock)
    assert path.read_text().splitlines() == [",".join(COLUMNS)]  # truncated, header rewritten


def test_locking_a_report_never_creates_one(tmp_path):
    with pytest.raises(FileNotFoundError):
        lock_report(str(tmp_path / "gone.csv"))
    assert not (tmp_path / "gone.csv").exists()


def test_a_report_from_before_the_region_column_is_resumed_in_its_own_columns(tmp_path):
    from worker.report import LEGACY_COLUMNS

    path = tmp_path / "old.csv"
    path.write_text(",".join(LEGACY_COLUMNS) + "\n" + ",".join(
        {"line": "2", "snapshot_id": SID.format(2), "project_id": "p", "outcome": "applied",
         "attempts": "1", "finished_at": "2026-01-01T00:00:00.000Z"}.get(c, "") for c in LEGACY_COLUMNS) + "\n")
    journal = read_journal(str(path), "csv")
    assert [line for line in range(5) if line in journal.final] == [2]
    writer = ReportWriter(str(path), "csv", append=True)
    writer.write_batch([result(3, region="r2")])
    writer.close()
    rows = list(csv.reader(path.read_text().splitlines()))
    assert rows[0] == list(LEGACY_COLUMNS) and {len(r) for r in rows} == {len(LEGACY_COLUMNS)}
    assert [r.line for r in iter_records(str(path), "csv")] == [2, 3]
