"""The docs' undo example end to end with CSV files only: 50 rows, 12 of them with an empty
description. A CSV report records "previous value: empty" as a lone quote (worker/spreadsheet.py),
so undo restores 50 of 50; before, 12 stayed relabelled and the message advised what was given."""

from __future__ import annotations

import csv

import pytest

from helpers import PROJECT, TOKEN, read_report, run_cli

ENV = {"SNAPRELABEL_TOKEN": TOKEN}


def _start(sim_thread):
    sim = sim_thread(snapshots=80)
    ids = sorted(sid for sid, s in sim.sim.snapshots.items() if not s["name"].startswith("autobk_"))[:50]
    for sid in ids[:12]:
        sim.sim.store.update(sim.sim.snapshots[sid], {"description": ""})
    for sid in ids[12:]:
        sim.sim.store.update(sim.sim.snapshots[sid], {"description": f"was {sid[:8]}"})
    return sim, ids, {sid: (sim.sim.snapshots[sid]["name"], sim.sim.snapshots[sid]["description"])
                      for sid in ids}


@pytest.mark.parametrize("how", ["inventory", "skip-unchanged"])
def test_undo_restores_50_of_50_with_a_csv_report(sim_thread, tmp_path, how):
    sim, ids, original = _start(sim_thread)
    jobs = tmp_path / "jobs.csv"
    with jobs.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        if how == "inventory":  # an export with the new values added: its Name/Description are current
            out.writerow(["ID", "Name", "Description", "new_name", "new_description"])
            out.writerows([sid, *original[sid], f"n-{i:02d}", f"d-{i:02d}"] for i, sid in enumerate(ids))
        else:
            out.writerow(["snapshot_id", "name", "description"])
            out.writerows([sid, f"n-{i:02d}", f"d-{i:02d}"] for i, sid in enumerate(ids))
    common = ("--endpoint", sim.url, "--project-id", PROJECT, "--rate", "0", "--backoff-base", "0.01")
    extra = ("--skip-unchanged",) if how == "skip-unchanged" else ()
    done = run_cli("run", str(jobs), "--report", str(tmp_path / "r.csv"), *extra, *common, env=ENV)
    assert done.returncode == 0, done.stderr
    assert all(sim.sim.snapshots[sid]["description"].startswith("d-") for sid in ids)
    assert sum(r["previous_description"] == "'" for r in read_report(tmp_path / "r.csv")) == 12

    undo = run_cli("undo", str(tmp_path / "r.csv"), "-o", str(tmp_path / "undo.csv"))
    assert undo.returncode == 0, undo.stderr
    assert "undo: 50 rows to restore" in undo.stderr and "cannot" not in undo.stderr
    again = run_cli("run", str(tmp_path / "undo.csv"), "--report", str(tmp_path / "undo-r.csv"), *common, env=ENV)
    assert again.returncode == 0, again.stderr
    assert {sid: (sim.sim.snapshots[sid]["name"], sim.sim.snapshots[sid]["description"]) for sid in ids} == original
    assert [r["outcome"] for r in read_report(tmp_path / "undo-r.csv")] == ["applied"] * 50


def test_an_unrecorded_previous_value_is_named_as_such(sim_thread, tmp_path):
    sim, ids, _ = _start(sim_thread)
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("snapshot_id,description\n" + "".join(f"{sid},d\n" for sid in ids[:3]))
    common = ("--endpoint", sim.url, "--project-id", PROJECT, "--rate", "0", "--backoff-base", "0.01")
    assert run_cli("run", str(jobs), "--report", str(tmp_path / "r.csv"), *common, env=ENV).returncode == 0
    undo = run_cli("undo", str(tmp_path / "r.csv"))
    assert undo.returncode == 1
    assert ("undo: 3 rows changed a description but the report records no previous description at all: "
            "the job was not told the current values (run it with --skip-unchanged") in undo.stderr


def test_a_lone_quote_value_round_trips_and_is_not_empty():
    from worker.spreadsheet import EMPTY_CELL, from_spreadsheet, known_to_spreadsheet, to_spreadsheet

    for value in ("'", "''", "'=x", "=1", "", "plain"):
        assert from_spreadsheet(known_to_spreadsheet(value)) == value
    assert known_to_spreadsheet("") == EMPTY_CELL and known_to_spreadsheet(None) == ""
    assert to_spreadsheet("'") == "''"
