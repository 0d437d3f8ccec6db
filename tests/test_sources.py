"""Reading jobs files as operators produce them: spreadsheets, exports, pipes."""

import io
import os
import subprocess
import sys
import threading
import zipfile

import pytest
from openpyxl import Workbook

from helpers import ROOT
from worker.jobs import RawRow, Rejection
from worker.sources import HeaderError, InputSpec, count_rows, is_rereadable, open_rows, same_file
from worker.spreadsheet import to_spreadsheet

SID = "3d4e5f60-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
SID2 = "3d4e5f60-1a2b-4c3d-8e9f-0a1b2c3d4e50"


def read(tmp_path, content: bytes, name="jobs.csv", **spec):
    path = tmp_path / name
    path.write_bytes(content)
    with open_rows(InputSpec(str(path), **spec)) as rows:
        return list(rows)


def test_bom_crlf_quotes_commas_newlines_and_chinese(tmp_path):
    content = ("\ufeffsnapshot_id,name,description\r\n"
               f'{SID},"prod, ""db""",快照描述\r\n'
               f'{SID2},plain,"two\r\nlines"\r\n').encode()
    rows = read(tmp_path, content)
    assert [r.line for r in rows] == [2, 3]
    assert rows[0].fields == {"snapshot_id": SID, "name": 'prod, "db"', "description": "快照描述"}
    assert rows[1].fields["description"] == "two\r\nlines"


def test_line_numbers_follow_physical_lines_after_multiline_records(tmp_path):
    content = f'snapshot_id,name\n{SID},"a\nb\nc"\n\n{SID2},next\n'.encode()
    rows = read(tmp_path, content)
    assert [r.line for r in rows] == [2, 6]


def test_empty_cells_mean_not_given(tmp_path):
    rows = read(tmp_path, f"id,name,description\n{SID},,desc\n".encode())
    assert rows[0].fields == {"snapshot_id": SID, "name": None, "description": "desc"}


def test_column_override_maps_an_inventory_header(tmp_path):
    content = f"Snapshot UUID,Label\n{SID},new\n".encode()
    rows = read(tmp_path, content, columns=("snapshot_id=Snapshot UUID", "name=label"))
    assert rows[0].fields == {"snapshot_id": SID, "name": "new"}


def test_inventory_with_new_columns_keeps_current_values_as_previous(tmp_path):
    content = f"ID,Name,Description,Status,new_name\n{SID},old,old desc,available,new\n".encode()
    fields = read(tmp_path, content)[0].fields
    assert fields["name"] == "new"
    assert "description" not in fields  # the current description is not a target
    assert (fields["previous_name"], fields["previous_description"]) == ("old", "old desc")


def test_a_row_with_extra_fields_is_rejected_not_misread(tmp_path):
    rows = read(tmp_path, f"snapshot_id,name\n{SID},prod,db\n{SID2},ok\n".encode())
    assert isinstance(rows[0], Rejection) and rows[0].line == 2
    assert "3 fields but the header has 2" in rows[0].message
    assert isinstance(rows[1], RawRow)


@pytest.mark.parametrize("content, expected", [
    (b"", "the file is empty"),
    (b"name,description\nx,y\n", "no snapshot id column; found 'name', 'description'"),
    (b"snapshot_id,status\nx,y\n", "no name or description column"),
    (b"snapshot_id;name\nx;y\n", "pass --delimiter ';'"),
    (b"id,name,name\n", "appears twice"),
])
def test_unusable_headers_name_the_problem(tmp_path, content, expected):
    with pytest.raises(HeaderError, match="line 1|empty") as info:
        read(tmp_path, content)
    assert expected in str(info.value)
    assert "jobs.csv" in str(info.value)


def test_an_oversized_field_rejects_its_row_only(tmp_path):
    content = f'snapshot_id,name\n{SID},"{"x" * (2 << 20)}"\n{SID2},ok\n'.encode()
    rows = read(tmp_path, content)
    assert isinstance(rows[0], Rejection) and rows[0].code == "line_too_long"
    assert "longer than 1,048,576 characters" in rows[0].message
    assert isinstance(rows[-1], RawRow) and rows[-1].fields["name"] == "ok"


def test_jsonl_rows_with_aliases_explicit_empty_and_errors(tmp_path):
    content = "\n".join([
        f'{{"id": "{SID}", "display_name": "快照", "description": ""}}',
        "{not json",
        "[1, 2]",
        '{"name": "no id"}',
        "",
        f'{{"snapshot_id": "{SID2}", "name": null, "new_description": "d"}}',
    ]).encode()
    rows = read(tmp_path, content, name="jobs.jsonl")
    assert rows[0].fields == {"snapshot_id": SID, "display_name": "快照", "description": ""}
    assert isinstance(rows[1], Rejection) and rows[1].line == 2 and "not valid JSON" in rows[1].message
    assert isinstance(rows[2], Rejection) and "expected a JSON object, got list" in rows[2].message
    assert isinstance(rows[3], Rejection) and "no snapshot id" in rows[3].message
    assert rows[4].line == 6 and rows[4].fields["description"] == "d"


def test_stdin(monkeypatch):
    data = io.BytesIO(f"snapshot_id,name\n{SID},from-stdin\n".encode())
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(data))
    with open_rows(InputSpec("-")) as rows:
        assert [r.fields["name"] for r in rows] == ["from-stdin"]


def test_count_rows_for_progress(tmp_path):
    path = tmp_path / "j.csv"
    path.write_text("snapshot_id,name\n" + f"{SID},x\n" * 5)
    assert count_rows(InputSpec(str(path))) == 5
    assert count_rows(InputSpec("-")) is None


# --- hostile inputs (issue 12) ---

def read_stream(tmp_path, content: bytes, name="jobs.csv", **spec) -> list:
    """The rows of `content` read through a FIFO, as from `producer | snaprelabel run -` or <(...)."""
    fifo = tmp_path / name
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=(content,))
    writer.start()
    try:
        with open_rows(InputSpec(str(fifo), **spec)) as rows:
            return list(rows)
    finally:
        writer.join()


@pytest.mark.parametrize("name", ["jobs.csv", "jobs.jsonl"])
def test_a_stream_cut_in_the_middle_of_its_last_row_does_not_apply_it(tmp_path, name):
    rows = {"jobs.csv": f"snapshot_id,name\n{SID},whole\n{SID2},cut-of",
            "jobs.jsonl": f'{{"snapshot_id": "{SID}", "name": "whole"}}\n{{"snapshot_id": "{SID2}", "na'}
    rows = read_stream(tmp_path, rows[name].encode(), name)
    assert isinstance(rows[0], RawRow) and rows[0].fields["name"] == "whole"
    assert isinstance(rows[1], Rejection) and rows[1].code == "truncated_row"
    assert rows[1].line == rows[0].line + 1
    assert "no line end" in rows[1].message


def test_a_regular_file_without_its_last_line_end_is_whole(tmp_path):
    """Files written by hand often lack the last line end; a regular file is read to its end."""
    rows = read(tmp_path, f"snapshot_id,name\n{SID},a\n{SID2},last".encode())
    assert [r.fields["name"] for r in rows] == ["a", "last"]


def test_a_stream_whose_last_json_line_is_whole_json_keeps_it(tmp_path):
    """A JSON object ends with '}': one that parses cannot have been cut."""
    rows = read_stream(tmp_path, f'{{"snapshot_id": "{SID}", "name": "a"}}'.encode(), "jobs.jsonl")
    assert isinstance(rows[0], RawRow) and rows[0].fields["name"] == "a"


def test_a_line_over_the_bound_is_rejected_and_never_held(tmp_path):
    """Many short fields make a line of 3 MiB: no field is over the field limit, the line is."""
    content = f"snapshot_id,name\n{SID},{'x,' * (3 << 19)}\n{SID2},ok\n".encode()
    rows = read(tmp_path, content)
    assert isinstance(rows[0], Rejection) and rows[0].code == "line_too_long" and rows[0].line == 2
    assert isinstance(rows[1], RawRow) and rows[1].line == 3 and rows[1].fields["name"] == "ok"


def test_a_header_over_the_bound_fails_at_once(tmp_path):
    """/dev/zero has no line end: the reader must not look for one."""
    with (pytest.raises(HeaderError, match="line 1 is longer than 1,048,576 characters"),
          open_rows(InputSpec("/dev/zero"))):
            pass


@pytest.mark.parametrize("content, code, field", [
    ('{"snapshot_id": "%s", "name": %s}' % (SID2, "[" * 100_000 + "]" * 100_000), "invalid_json", None),
    ('{"snapshot_id": "%s", "name": "a\\ud800"}' % SID2, "invalid_utf8", "name"),
    ('{"snapshot_id": "%s", "name": "\\udc80"}' % SID2, "invalid_utf8", "name"),
    ('{"snapshot_id": "%s", "name": "a", "name": "b"}' % SID2, "duplicate_key", "name"),
    ('{"snapshot_id": "%s", "新名称": "a", "新名称": "b"}' % SID2, "duplicate_key", "新名称"),
])
def test_json_that_no_row_survives_is_its_own_rejection(tmp_path, content, code, field):
    """Nested 100,000 deep (RecursionError), a lone surrogate (not a character: it cannot be
    written anywhere), a key given twice (which value?): each is one rejection, the rows around
    it are read."""
    good = '{"snapshot_id": "%s", "name": "good"}' % SID
    rows = read(tmp_path, f"{good}\n{content}\n{good.replace(SID, SID.upper())}\n".encode(), "jobs.jsonl")
    assert [type(r) for r in rows] == [RawRow, Rejection, RawRow] and rows[2].line == 3
    assert (rows[1].line, rows[1].code, rows[1].problems[0].field) == (2, code, field)
    assert all(isinstance(v, str) and v.encode() for v in rows[1].fields.values() if isinstance(v, str))


def test_a_json_array_nested_too_deeply_ends_the_array_with_a_rejection(tmp_path):
    content = f'[{{"snapshot_id": "{SID}", "name": "good"}}, {"[" * 100_000}'
    rows = read(tmp_path, content.encode(), "jobs.json")
    assert isinstance(rows[0], RawRow) and rows[1].line == 2 and "nested too deeply" in rows[1].message


def test_a_json_array_with_a_key_given_twice_rejects_that_element_only(tmp_path):
    content = (f'[{{"snapshot_id": "{SID}", "name": "a", "name": "b"}}, '
               f'{{"snapshot_id": "{SID2}", "name": "c"}}]')
    rows = read(tmp_path, content.encode(), "jobs.json")
    assert isinstance(rows[0], Rejection) and rows[0].code == "duplicate_key"
    assert isinstance(rows[1], RawRow) and rows[1].fields["name"] == "c"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_json_lines_in_utf16_is_one_error_not_one_a_line(tmp_path, encoding):
    content = "".join(f'{{"snapshot_id": "{SID}", "name": "n{i}"}}\n' for i in range(5)).encode(encoding)
    with pytest.raises(HeaderError, match="jobs.jsonl: line 1 is not UTF-8 text"):
        read(tmp_path, content, "jobs.jsonl")


def test_a_delimiter_of_two_characters_is_a_clear_error(tmp_path):
    with pytest.raises(HeaderError, match="--delimiter ';;': give one character"):
        read(tmp_path, f"snapshot_id;name\n{SID};a\n".encode(), delimiter=";;")


def test_stdin_closed_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)  # what Python makes of `<&-`
    with pytest.raises(HeaderError, match="stdin is closed"):
        open_rows(InputSpec("-"))


def test_cells_written_for_a_spreadsheet_read_back_as_their_values(tmp_path):
    """undo and plan write jobs files whose formula-like cells carry a quote (worker/spreadsheet.py)."""
    values = ["=1+2", "-x", "'=x", "''", "'abc", "'", "@a", "+1"]
    content = "snapshot_id,name\n" + "".join(
        f"{SID[:-2]}{i:02d},{to_spreadsheet(v)}\n" for i, v in enumerate(values))
    assert [r.fields["name"] for r in read(tmp_path, content.encode())] == values


def test_is_rereadable_tells_a_file_from_a_stream(tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text("x")
    os.mkfifo(tmp_path / "fifo")
    os.symlink(path, tmp_path / "link")
    assert is_rereadable(str(path)) and is_rereadable(str(tmp_path / "link"))
    assert not is_rereadable(str(tmp_path / "fifo")) and not is_rereadable("-")
    assert not is_rereadable(str(tmp_path / "missing"))


def test_same_file_sees_through_links_and_relative_paths(tmp_path, monkeypatch):
    path = tmp_path / "jobs.csv"
    path.write_text("x")
    os.symlink(path, tmp_path / "link")
    os.link(path, tmp_path / "hard")
    monkeypatch.chdir(tmp_path)
    for other in ("link", "hard", "./jobs.csv", str(path)):
        assert same_file(str(path), other)
    assert not same_file(str(path), "report.csv")  # not there yet
    (tmp_path / "report.csv").write_text("x")
    assert not same_file(str(path), "report.csv")
    # `run - < jobs.csv --report link`: stdin is the file
    check = "from worker.sources import same_file; print(same_file('-', 'link'))"
    with path.open("rb") as f:
        out = subprocess.run([sys.executable, "-c", check], stdin=f, capture_output=True, text=True,
                             cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert out.stdout.strip() == "True"


def test_a_workbook_damaged_in_the_middle_keeps_the_rows_before_and_rejects_the_rest(tmp_path):
    workbook = Workbook()
    workbook.active.append(["snapshot_id", "name"])
    for i in range(5000):
        workbook.active.append([f"{SID[:-4]}{i:04d}", f"name-{i}"])
    plain = io.BytesIO()
    workbook.save(plain)
    data = bytearray(plain.getvalue())
    sheet = zipfile.ZipFile(plain).getinfo("xl/worksheets/sheet1.xml")
    start = sheet.header_offset + 30 + len(sheet.filename) + len(sheet.extra)  # its compressed bytes
    middle = start + sheet.compress_size * 3 // 4
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    rows = read(tmp_path, bytes(data), "jobs.xlsx")
    assert all(isinstance(r, RawRow) for r in rows[:-1]) and len(rows) > 1000
    assert [r.fields["name"] for r in rows[:3]] == ["name-0", "name-1", "name-2"]
    assert isinstance(rows[-1], Rejection) and rows[-1].line == rows[-2].line + 1
    assert "the workbook is damaged from this row on" in rows[-1].message
