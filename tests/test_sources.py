"""Reading jobs files as operators produce them: spreadsheets, exports, pipes."""

import io
import sys

import pytest

from worker.jobs import RawRow, Rejection
from worker.sources import HeaderError, InputSpec, count_rows, open_rows

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
               f'{SID2},plain,"two\r\nlines"\r\n').encode("utf-8")
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
    assert isinstance(rows[0], Rejection) and "a field is longer than 1,048,576 characters" in rows[0].message
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
