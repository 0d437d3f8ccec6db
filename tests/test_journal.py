"""The report read back as a journal: final rows per line, torn tails found by whole records and
cut off, damage refused; and the packed live listing behind --skip-unchanged."""

from __future__ import annotations

import csv
import io
import json
import sys

import pytest

from worker.journal import JournalError, LineSet, iter_records, read_journal
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
        return (json.dumps(dict(zip(COLUMNS, cells)), ensure_ascii=False) + "\n").encode()
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
