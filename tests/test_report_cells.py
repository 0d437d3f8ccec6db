"""The formula guard looks at a value's first character before anything else (most values it
returns at once): a value not starting with a guarded character is returned as it is, and the
report's cells and bytes are the guard's on every cell, with secrets redacted."""

import csv
import io
import itertools
import sys

from worker import report
from worker.redaction import SecretRegistry
from worker.report import COLUMNS, VALUE_COLUMNS, ReportWriter
from worker.results import Outcome, Result
from worker.spreadsheet import GUARDED_FIRST, known_to_spreadsheet, to_spreadsheet

SID = "0a1b2c3d-0000-4000-8000-00000000abcd"
SECRET = "hunter2-token-value"
TRICKY = ["", "'", "''", "'=x", "'a", "=1+2", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "\nx", " =x",
          "a=b", "plain", "快照", "\ufeff=x", "'\t", "'\r", "'-", "'@", "'+", "==", "x" * 300,
          f"said {SECRET}", f"={SECRET}"]


def old_value_cell(value):
    if value is None or isinstance(value, str):
        return known_to_spreadsheet(value)
    return value


def old_other_cell(value):
    return to_spreadsheet(value) if isinstance(value, str) else value


def test_a_value_not_starting_with_a_guarded_character_is_never_changed():
    # Every code point as the first character, with what may follow it.
    for cp, rest in itertools.product(range(sys.maxunicode + 1), ("", "=", "'", "x")):
        value = chr(cp) + rest
        if value[0] not in GUARDED_FIRST:
            assert to_spreadsheet(value) is value, hex(cp)


def test_cells_are_what_the_guard_on_every_cell_made():
    values = [*TRICKY, None, 0, 200, 10.5, Outcome.APPLIED, Outcome.FAILED]
    values += [chr(cp) + "x" for cp in range(0x3000)]
    for value in values:
        assert report._value_cell(value) == old_value_cell(value), repr(value)
        assert report._other_cell(value) == old_other_cell(value), repr(value)
        assert type(report._value_cell(value)) is type(old_value_cell(value))


def results():
    texts = [None, *TRICKY]
    for i, (name, other) in enumerate(itertools.product(texts, texts[:12])):
        yield Result(i + 2, SID if i % 3 else other, "0123456789abcdef0123456789abcdef",
                     name, other, Outcome.FAILED if i % 2 else Outcome.APPLIED,
                     http_status=400 if i % 2 else 200, error_code=other, error_message=name,
                     attempts=i % 4, latency_ms=i / 7, request_id=other, server_name=other,
                     server_description=name, previous_name=other, previous_description=name,
                     finished_at="2026-12-03T16:30:41.123Z", region=other if i % 5 else None)


def test_report_bytes_are_unchanged(tmp_path):
    secrets = SecretRegistry()
    secrets.add(SECRET)
    rows = list(results())
    writer = ReportWriter(str(tmp_path / "report.csv"), redact=secrets.redact)
    writer.write_batch(rows[:100])
    writer.write_batch(rows[100:])
    writer.close()

    expected = io.StringIO(newline="")
    old = csv.writer(expected)
    old.writerow(COLUMNS)
    cells = [old_value_cell if name in VALUE_COLUMNS else old_other_cell for name in COLUMNS]
    for row in rows:
        old.writerow([cell(secrets.redact(v) if isinstance(v, str) else v)
                      for cell, v in zip(cells, (getattr(row, c) for c in COLUMNS), strict=True)])
    written = (tmp_path / "report.csv").read_bytes()
    assert written == expected.getvalue().encode("utf-8")
    assert SECRET.encode() not in written and b"'=" in written
