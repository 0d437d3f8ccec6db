"""Unchanged rows, --skip-unchanged and undo, against the simulator: what is (not) sent, what the
report records as previous values, and an undo job that puts every name back."""

from __future__ import annotations

import csv
import io
import json
import sys

import pytest

from helpers import FAST, PROJECT, TOKEN, read_report, run_cli
from worker.report import COLUMNS
from worker.runner import JobSpec, run_job
from worker.settings import ConfigError, load_settings
from worker.sources import InputSpec

GHOST = "00000000-0000-4000-8000-000000000000"
ENV = {"SNAPRELABEL_TOKEN": TOKEN}


def settings_for(sim, **overrides):
    return load_settings({"endpoint": sim.url, "project_id": PROJECT, "token": TOKEN, "rate": 0,
                          "concurrency": 4, **FAST, **overrides})


async def run(sim, jobs, report, **overrides):
    return await run_job(settings_for(sim, **overrides), JobSpec(InputSpec(str(jobs)), str(report)),
                         on_terminal=False)


def write_rows(path, header, rows):
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows(rows)
    return path


def puts(sim):
    return [r for r in sim.requests if r.method == "PUT"]


def make_backup_owned(sim, by_name: str | None, by_metadata: str | None):
    if by_name:
        sim.store.update(sim.snapshots[by_name], {"name": "autobk_snapshot_vbs_1234"})
    if by_metadata:
        sim.store.update(sim.snapshots[by_metadata], {"metadata": {"__system__enableActive": "true"}})


@pytest.mark.parametrize("sim", [{"snapshots": 2500}], indirect=True)
async def test_skip_unchanged_sends_no_put_for_rows_it_can_answer_from_the_listing(sim, tmp_path):
    ids = sorted(sim.snapshots)
    at_target, to_change, (by_name, by_metadata) = ids[:10], ids[10:30], ids[30:32]
    make_backup_owned(sim, by_name, by_metadata)
    before = {sid: sim.snapshots[sid]["name"] for sid in ids}
    rows = ([[sid, before[sid]] for sid in at_target] + [[sid, f"new-{sid[:8]}"] for sid in to_change]
            + [[GHOST, "ghost"], [by_name, "mine-now"], [by_metadata, "mine-too"]])
    jobs = write_rows(tmp_path / "jobs.csv", ["snapshot_id", "name"], rows)
    sim.reset_records()

    result = await run(sim, jobs, tmp_path / "r.csv", skip_unchanged=True, rate=10)

    report = {r["snapshot_id"]: r for r in read_report(tmp_path / "r.csv")}
    assert {r.snapshot_id for r in puts(sim)} == set(to_change)
    assert all(report[sid]["outcome"] == "unchanged" for sid in at_target)
    assert all(report[sid]["previous_name"] == before[sid] for sid in at_target + to_change)
    assert all(report[sid]["outcome"] == "applied" for sid in to_change)
    assert (report[GHOST]["outcome"], report[GHOST]["error_code"]) == ("failed", "not_found")
    assert {report[s]["error_code"] for s in (by_name, by_metadata)} == {"backup_owned"}
    assert {report[s]["outcome"] for s in (by_name, by_metadata)} == {"rejected"}
    assert result.exit_code == 1
    listing = [r for r in sim.requests if r.method == "GET" and r.query.startswith("limit=1000")]
    assert len(listing) == 4  # 2,500 snapshots: three pages of 1,000, then an empty one
    times = sorted(r.t_mono for r in sim.requests)  # the listing shares the job's rate limit
    assert len(times) == 25  # the credential check, four pages and 20 PUTs: over a second's worth
    assert max(sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times)) <= 10
    assert listing[-1].t_mono < min(r.t_mono for r in puts(sim))  # listed before any PUT


async def test_backup_owned_snapshots_are_sent_with_allow_autobk_prefix(sim, tmp_path):
    sid = sorted(sim.snapshots)[0]
    make_backup_owned(sim, sid, None)
    jobs = write_rows(tmp_path / "jobs.csv", ["snapshot_id", "name"], [[sid, "taken-over"]])
    result = await run(sim, jobs, tmp_path / "r.csv", skip_unchanged=True, allow_autobk_prefix=True)
    assert result.exit_code == 0 and sim.snapshots[sid]["name"] == "taken-over"
    assert read_report(tmp_path / "r.csv")[0]["previous_name"] == "autobk_snapshot_vbs_1234"


async def test_a_put_that_changes_nothing_is_recorded_unchanged(sim, tmp_path):
    same, other, unknown = sorted(sim.snapshots)[:3]
    name = {sid: sim.snapshots[sid]["name"] for sid in (same, other, unknown)}
    jobs = write_rows(tmp_path / "jobs.csv", ["snapshot_id", "previous_name", "name"], [
        [same, name[same], name[same]],  # known, and the target: nothing changes
        [other, name[other], "renamed"],
        [unknown, "", name[unknown]],  # the same value, but the previous one is not known
    ])
    await run(sim, jobs, tmp_path / "r.csv")
    report = {r["snapshot_id"]: r for r in read_report(tmp_path / "r.csv")}
    assert len(puts(sim)) == 3
    assert [report[s]["outcome"] for s in (same, other, unknown)] == ["unchanged", "applied", "applied"]
    assert report[same]["server_name"] == name[same]


async def test_a_listing_that_fails_stops_the_job_before_anything_is_sent(sim, tmp_path):
    jobs = write_rows(tmp_path / "jobs.csv", ["snapshot_id", "name"], [[sorted(sim.snapshots)[0], "x"]])
    sim.set_rate_limit(1)  # the credential check passes; the listing is throttled past its retries
    with pytest.raises(ConfigError, match="--skip-unchanged: listing snapshots failed: HTTP 429"):
        await run(sim, jobs, tmp_path / "r.csv", skip_unchanged=True, max_attempts=2)
    assert puts(sim) == [] and list(tmp_path.iterdir()) == [jobs]  # no report left behind


async def test_a_project_that_cannot_be_listed_fails_its_rows_without_a_put(sim, tmp_path, monkeypatch):
    """Rows naming their project are checked against that project's listing, made when the first
    row needs it; when it cannot be made, the rows fail rather than go unchecked. (From stdin: a
    jobs file's projects are proven before the start, see the next test.)"""
    ids = sorted(sim.snapshots)[:3]
    jobs = write_rows(tmp_path / "jobs.csv", ["snapshot_id", "project_id", "name"],
                      [[sid, PROJECT, f"x{i}"] for i, sid in enumerate(ids)])
    sim.set_faults(["403:1.0"])
    settings = load_settings({"endpoint": sim.url, "token": TOKEN, "rate": 0, **FAST,
                              "skip_unchanged": True})
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(jobs.read_bytes())))
    result = await run_job(settings, JobSpec(InputSpec("-"), str(tmp_path / "r.csv")),
                           on_terminal=False)
    rows = read_report(tmp_path / "r.csv")
    assert result.exit_code == 1 and puts(sim) == []
    assert {(r["outcome"], r["error_code"]) for r in rows} == {("failed", "pair_refused")}
    assert "credential check GET" in rows[0]["error_message"] and "HTTP 403" in rows[0]["error_message"]
    assert len([r for r in sim.requests if r.method == "GET"]) == 1  # proven once, for all three


async def test_a_jobs_files_project_that_cannot_be_listed_stops_it_before_the_start(sim, tmp_path):
    ids = sorted(sim.snapshots)[:3]
    jobs = write_rows(tmp_path / "jobs.csv", ["snapshot_id", "project_id", "name"],
                      [[sid, PROJECT, f"x{i}"] for i, sid in enumerate(ids)])
    sim.set_faults(["403:1.0"])
    settings = load_settings({"endpoint": sim.url, "token": TOKEN, "rate": 0, **FAST,
                              "skip_unchanged": True})
    with pytest.raises(ConfigError, match="credential check GET .* HTTP 403"):
        await run_job(settings, JobSpec(InputSpec(str(jobs)), str(tmp_path / "r.csv")), on_terminal=False)
    assert puts(sim) == [] and list(tmp_path.iterdir()) == [jobs]


def test_undo_restores_every_name_end_to_end(sim_thread, tmp_path):
    sim = sim_thread(snapshots=200)
    ids = sorted(sim.sim.snapshots)[:150]
    original = {sid: dict(sim.sim.snapshots[sid]) for sid in ids}
    jobs = write_rows(tmp_path / "jobs.csv", ["snapshot_id", "name"],
                      [[sid, f"relabelled-{i:03d}"] for i, sid in enumerate(ids)])
    common = ("--endpoint", sim.url, "--project-id", PROJECT, "--rate", "0", "--backoff-base", "0.01")
    done = run_cli("run", str(jobs), "--report", str(tmp_path / "r.csv"), "--skip-unchanged",
                   *common, env=ENV)
    assert done.returncode == 0, done.stderr
    assert all(sim.sim.snapshots[sid]["name"].startswith("relabelled-") for sid in ids)

    undo = run_cli("undo", str(tmp_path / "r.csv"), "-o", str(tmp_path / "undo.csv"))
    assert undo.returncode == 0, undo.stderr
    assert "undo: 150 rows to restore" in undo.stderr
    done = run_cli("run", str(tmp_path / "undo.csv"), "--report", str(tmp_path / "undo-r.csv"),
                   *common, env=ENV)

    assert done.returncode == 0, done.stderr
    assert all(sim.sim.snapshots[sid]["name"] == original[sid]["name"] for sid in ids)
    assert all(sim.sim.snapshots[sid]["description"] == original[sid]["description"] for sid in ids)
    # The undo's own report knows the relabelled names: undoing the undo relabels again.
    again = run_cli("undo", str(tmp_path / "undo-r.csv"))
    assert again.returncode == 0
    assert sorted(r["name"] for r in csv.DictReader(again.stdout.splitlines())) == [
        f"relabelled-{i:03d}" for i in range(150)]


async def test_undo_from_an_inventory_column_and_with_empty_previous_values(sim, tmp_path):
    """Previous values from --previous-name-column; an empty previous description is known in a
    JSON Lines report, and an undo file in either format sets it back (CSV: a lone quote)."""
    ids = sorted(sim.snapshots)[:4]
    for sid in ids:
        sim.store.update(sim.snapshots[sid], {"description": ""})
    original = {sid: sim.snapshots[sid]["name"] for sid in ids}
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"id": sid, "Current Name": original[sid], "old_description": "",
                                        "new_name": f"n{i}", "new_description": f"d{i}"}) + "\n"
                            for i, sid in enumerate(ids)))
    spec = JobSpec(InputSpec(str(jobs), columns=("previous_name=Current Name",)),
                   str(tmp_path / "r.jsonl"))
    await run_job(settings_for(sim, report_format="jsonl"), spec, on_terminal=False)
    assert all(sim.snapshots[sid]["description"].startswith("d") for sid in ids)

    as_csv = run_cli("undo", str(tmp_path / "r.jsonl"))
    assert as_csv.returncode == 0, as_csv.stderr
    assert [r["description"] for r in csv.DictReader(as_csv.stdout.splitlines())] == ["'"] * 4
    undo = run_cli("undo", str(tmp_path / "r.jsonl"), "-o", str(tmp_path / "undo.jsonl"))
    assert undo.returncode == 0, undo.stderr
    await run_job(settings_for(sim), JobSpec(InputSpec(str(tmp_path / "undo.jsonl")),
                                             str(tmp_path / "undo-r.csv")), on_terminal=False)
    assert {sid: (sim.snapshots[sid]["name"], sim.snapshots[sid]["description"]) for sid in ids} == {
        sid: (original[sid], "") for sid in ids}


async def test_undo_names_what_it_cannot_restore(sim, tmp_path):
    ids = sorted(sim.snapshots)[:3]
    make_backup_owned(sim, ids[0], None)
    jobs = write_rows(tmp_path / "jobs.csv", ["snapshot_id", "name"],
                      [[ids[0], "mine"], [ids[1], "no-previous"], [ids[2], "x"], ["bad", "y"]])
    report = tmp_path / "r.csv"
    await run(sim, jobs, report, allow_autobk_prefix=True)  # no listing: previous values unknown...
    rows = read_report(report)
    # ...except where a later run learnt them: simulate a report that knows the first row's.
    with report.open("w", encoding="utf-8", newline="") as f:
        out = csv.DictWriter(f, list(rows[0]))
        out.writeheader()
        out.writerows({**r, "previous_name": "autobk_snapshot_vbs_1234" if r["snapshot_id"] == ids[0]
                       else r["previous_name"]} for r in rows)

    undo = run_cli("undo", str(report))

    assert undo.returncode == 1
    assert "undo: 1 rows to restore" in undo.stderr
    assert "2 rows changed a name whose previous_name the report leaves empty: not known when the job " \
           "ran" in undo.stderr
    assert "(input lines 3, 4)" in undo.stderr
    assert "1 rows restore a name starting autobk_snapshot_: run the undo job with " \
           "--allow-autobk-prefix (input lines 2)" in undo.stderr
    assert list(csv.DictReader(undo.stdout.splitlines())) == [{
        "snapshot_id": ids[0], "project_id": PROJECT, "region": "", "name": "autobk_snapshot_vbs_1234",
        "description": "", "previous_name": "mine", "previous_description": ""}]


def test_undo_of_something_that_is_not_a_report_is_one_clear_line(tmp_path):
    (tmp_path / "jobs.csv").write_text("snapshot_id,name\n")
    done = run_cli("undo", str(tmp_path / "jobs.csv"))
    assert done.returncode == 2 and "not a snaprelabel report" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


async def test_undo_restores_rows_a_2xx_may_have_applied_though_its_body_was_unreadable(sim, tmp_path):
    # A 204 or a 200 with an HTML body: the server accepted the PUT, the tool could not confirm
    # it (failed, unreadable_response). Undo must put those back too, not say "0 rows".
    ids = sorted(sim.snapshots)[:2]
    jobs = write_rows(tmp_path / "jobs.csv", ["snapshot_id", "name", "previous_name"],
                      [[ids[0], "new-0", "old-0"], [ids[1], "new-1", "old-1"]])
    report = tmp_path / "r.csv"
    await run(sim, jobs, report)
    rows = read_report(report)
    with report.open("w", encoding="utf-8", newline="") as f:
        out = csv.DictWriter(f, list(rows[0]))
        out.writeheader()
        out.writerows({**r, "outcome": "failed", "http_status": status, "attempts": "6",
                       "error_code": "unreadable_response"}
                      for r, status in zip(rows, ("204", "200"), strict=True))

    undo = run_cli("undo", str(report))
    assert undo.returncode == 0, undo.stderr
    assert "undo: 2 rows to restore" in undo.stderr
    assert sorted(r["name"] for r in csv.DictReader(undo.stdout.splitlines())) == ["old-0", "old-1"]


def test_undo_refuses_to_write_over_the_report_it_reads(tmp_path):
    report = tmp_path / "r.csv"
    report.write_text(",".join(COLUMNS) + "\n")
    before = report.read_bytes()
    done = run_cli("undo", str(report), "-o", str(report))
    assert done.returncode == 2 and "is the report itself" in done.stderr
    assert report.read_bytes() == before
