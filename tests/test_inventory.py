"""Inventories as they come: openstack CLI csv/json exports, console exports with English or
Chinese headers, .xlsx workbooks. Each is read as it is and runs end to end on the simulator."""

from __future__ import annotations

import csv
import json

import pytest
from openpyxl import Workbook

from helpers import FAST, PROJECT, TOKEN, read_report
from worker.jobs import RawRow, Rejection
from worker.runner import JobSpec, run_job
from worker.settings import ConfigError, load_settings
from worker.sources import HeaderError, InputSpec, count_rows, json_source, open_rows

SID = "3d4e5f60-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
SID2 = "3d4e5f60-1a2b-4c3d-8e9f-0a1b2c3d4e50"


def read(path, **spec):
    with open_rows(InputSpec(str(path), **spec)) as rows:
        return list(rows)


def snapshots(sim, count):
    return [sim.snapshots[sid] for sid in sorted(sim.snapshots)[:count]]


async def run(sim, path, **spec):
    report = path.parent / "report.csv"
    settings = load_settings({"endpoint": sim.url, "project_id": PROJECT, "token": TOKEN,
                              "rate": 0, **FAST})
    result = await run_job(settings, JobSpec(InputSpec(str(path), **spec), str(report)),
                           on_terminal=False)
    return result, {r["snapshot_id"]: r for r in read_report(report)}


# -- end to end ---------------------------------------------------------------------------------

async def test_openstack_cli_csv_export_with_a_new_name_column(sim, tmp_path):
    # `openstack volume snapshot list --long -f csv`, quoting non-numeric values, plus a column.
    snaps = snapshots(sim, 5)
    path = tmp_path / "export.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC)
        out.writerow(["ID", "Name", "Description", "Status", "Size", "Created At", "Volume",
                      "Properties", "New Name"])
        for i, s in enumerate(snaps):
            out.writerow([s["id"], s["name"], s["description"], s["status"], s["size"],
                          s["created_at"], s["volume_id"], "", f"os-{i}"])
    before = {s["id"]: s["name"] for s in snaps}
    result, rows = await run(sim, path)

    assert result.exit_code == 0
    for i, s in enumerate(snaps):
        assert sim.snapshots[s["id"]]["name"] == f"os-{i}"
        assert rows[s["id"]]["previous_name"] == before[s["id"]]
        assert sim.snapshots[s["id"]]["description"] == s["description"]  # not a target


async def test_openstack_cli_json_export_edited_in_place(sim, tmp_path):
    # `openstack volume snapshot list -f json`: an indented JSON array, Name edited.
    snaps = snapshots(sim, 4)
    export = [{"ID": s["id"], "Name": f"json-{i}", "Description": f"d{i}",
               "Status": s["status"], "Size": s["size"]} for i, s in enumerate(snaps)]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export, indent=2), encoding="utf-8")
    result, rows = await run(sim, path)

    assert result.exit_code == 0
    for i, s in enumerate(snaps):
        assert (sim.snapshots[s["id"]]["name"], sim.snapshots[s["id"]]["description"]) == (f"json-{i}", f"d{i}")
        assert rows[s["id"]]["line"] == str(i + 1)  # the element's position in the array


async def test_console_export_with_chinese_headers(sim, tmp_path):
    snaps = snapshots(sim, 3)
    path = tmp_path / "快照列表.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as f:  # as Excel saves it
        out = csv.writer(f)
        out.writerow(["快照ID", "名称", "描述", "状态", "容量(GiB)", "新名称", "新描述"])
        for i, s in enumerate(snaps):
            out.writerow([s["id"], s["name"], s["description"], "可用", s["size"], f"数据盘-{i}",
                          "迁移前快照" if i else ""])
    result, rows = await run(sim, path)

    assert result.exit_code == 0
    for i, s in enumerate(snaps):
        live = sim.snapshots[s["id"]]
        assert live["name"] == f"数据盘-{i}"
        assert live["description"] == ("迁移前快照" if i else s["description"])
        assert rows[s["id"]]["previous_name"] == s["name"]


async def test_xlsx_workbook_streamed_with_sheet_row_numbers(sim, tmp_path):
    snaps = snapshots(sim, 4)
    book = Workbook()
    book.active.title = "notes"
    sheet = book.create_sheet("snapshots")
    sheet.append([])  # a blank first row: the header is the first row with text
    sheet.append(["Snapshot ID", "Snapshot Name", "Description", "New Name"])
    sheet.append([snaps[0]["id"], snaps[0]["name"], None, "xl-0"])
    sheet.append([snaps[1]["id"], snaps[1]["name"], None, 2024])  # a number cell
    sheet.append([])
    sheet.append([snaps[2]["id"], snaps[2]["name"], None, "xl-2"])
    sheet.append([snaps[3]["id"].upper(), snaps[3]["name"], None, "xl-3"])  # rejected
    path = tmp_path / "inventory.xlsx"
    book.save(path)
    result, rows = await run(sim, path, sheet="snapshots")

    assert result.exit_code == 1
    assert sim.snapshots[snaps[0]["id"]]["name"] == "xl-0"
    assert sim.snapshots[snaps[1]["id"]]["name"] == "2024"
    assert sim.snapshots[snaps[2]["id"]]["name"] == "xl-2"
    assert [rows[s["id"]]["line"] for s in snaps[:3]] == ["3", "4", "6"]
    rejected = rows[snaps[3]["id"].upper()]
    assert (rejected["line"], rejected["outcome"], rejected["error_code"]) == ("7", "rejected", "invalid_uuid")
    assert rows[snaps[0]["id"]]["previous_name"] == snaps[0]["name"]


# -- headers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("header, expected", [
    ("Snapshot ID,Snapshot Name", {"snapshot_id": SID, "name": "v"}),
    ("快照ID,名称,描述", {"snapshot_id": SID, "name": "v", "description": "w"}),
    ("id,Name,New-Name", {"snapshot_id": SID, "previous_name": "v", "name": "w"}),
    ("ID,快照名称,新描述", {"snapshot_id": SID, "previous_name": "v", "description": "w"}),
    ("Project ID,ID,Display Name", {"project_id": SID, "snapshot_id": "v", "display_name": "w"}),
])
def test_header_names_in_any_case_spacing_or_language(tmp_path, header, expected):
    path = tmp_path / "jobs.csv"
    values = [SID, "v", "w"][: header.count(",") + 1]
    path.write_text(f"{header}\n{','.join(values)}\n", encoding="utf-8")
    assert read(path)[0].fields == expected


def test_unknown_headers_list_what_was_found_and_the_flag_that_maps_them(tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text(f"Disk,Snap UUID,Label\nd,{SID},x\n")
    with pytest.raises(HeaderError) as info:
        read(path)
    message = str(info.value)
    assert "found 'Disk', 'Snap UUID', 'Label'" in message
    assert "--column 'snapshot_id=Snap UUID'" in message
    assert read(path, columns=("snapshot_id=Snap UUID", "name=Label"))[0].fields == {
        "snapshot_id": SID, "name": "x"}

    path.write_text(f"ID,Owner,Snapshot Label\n{SID},me,x\n")
    with pytest.raises(HeaderError, match=r"no name or description column.*--column 'name=Snapshot Label'"):
        read(path)


def test_a_workbook_header_error_names_the_sheet_row(tmp_path):
    book = Workbook()
    book.active.append(["Title of the export"])
    book.active.append(["Disk", "Size"])
    book.save(tmp_path / "x.xlsx")
    with pytest.raises(HeaderError, match=r"x.xlsx: line 1: no snapshot id column; found 'Title of the export'"):
        read(tmp_path / "x.xlsx")
    with pytest.raises(HeaderError, match="no sheet 'other'; the sheets are 'Sheet'"):
        read(tmp_path / "x.xlsx", sheet="other")
    (tmp_path / "bad.xlsx").write_bytes(b"not a zip")
    with pytest.raises(HeaderError, match="not a readable .xlsx workbook"):
        read(tmp_path / "bad.xlsx")


async def test_a_broken_workbook_is_one_line_and_nothing_is_sent(sim, tmp_path):
    (tmp_path / "bad.xlsx").write_bytes(b"PK\x03\x04 cut off")
    with pytest.raises(ConfigError, match="bad.xlsx: not a readable .xlsx workbook"):
        await run(sim, tmp_path / "bad.xlsx")
    assert sim.requests == [] and not (tmp_path / "report.csv").exists()


# -- JSON arrays --------------------------------------------------------------------------------

def test_a_json_array_is_streamed_across_chunk_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(json_source, "CHUNK", 7)  # every object spans several reads
    items = [{"ID": SID, "Name": "a,]}"}, {"id": SID2, "name": "多字节"}]
    path = tmp_path / "x.json"
    path.write_text("\ufeff[\n" + ",\n\n".join(json.dumps(i, ensure_ascii=False) for i in items) + "\n]\n",
                    encoding="utf-8")
    rows = read(path)
    assert [(r.line, r.fields) for r in rows] == [
        (1, {"snapshot_id": SID, "name": "a,]}"}), (2, {"snapshot_id": SID2, "name": "多字节"})]
    assert count_rows(InputSpec(str(path))) is None  # lines are not rows in an array


@pytest.mark.parametrize("text, message", [
    ('[\n{"id": "a", "name": "x"},\n{"id": "b", "name": }\n]', "at line 3: not valid JSON: Expecting value"),
    ('[\n{"id": "a", "name": "x"}\n{"id": "b"}]', "at line 3: expected ',' or ']'"),
    ('[\n{"id": "a", "name": "x"},\n', "at line 3: the array ends before its closing ']'"),
    ('[{"id": "a", "name": "x"}] trailing', "at line 1: text after the end"),
])
def test_a_broken_json_array_rejects_where_it_breaks_and_keeps_the_rows_before(tmp_path, text, message):
    path = tmp_path / "x.json"
    path.write_text(text)
    rows = read(path)
    assert isinstance(rows[0], RawRow) and rows[0].fields == {"snapshot_id": "a", "name": "x"}
    broken = rows[-1]
    assert isinstance(broken, Rejection) and broken.line == 2 and message in broken.message


def test_a_compact_json_array_still_numbers_its_rows_apart(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps([{"id": SID, "name": "a"}, {"id": SID2, "name": "b"}]))
    assert [r.line for r in read(path)] == [1, 2]


def test_json_lines_in_a_json_file_still_read_as_lines(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(f'{{"id": "{SID}", "name": "a"}}\n{{"id": "{SID2}", "name": "b"}}\n')
    assert [r.line for r in read(path)] == [1, 2]
