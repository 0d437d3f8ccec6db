"""A default run leaves backup-owned snapshots alone when the row says their current name (an
inventory's Name column, a previous_name column), as --skip-unchanged does with the listing;
before, only --skip-unchanged refused them and a default run renamed them."""

from __future__ import annotations

import csv

import pytest

from helpers import FAST, PROJECT, TOKEN, read_report
from worker.runner import JobSpec, run_job
from worker.settings import load_settings
from worker.sources import InputSpec


@pytest.mark.parametrize("header", [["ID", "Name", "new_name"], ["snapshot_id", "previous_name", "name"]])
@pytest.mark.parametrize("allow", [False, True])
async def test_a_backup_owned_snapshot_is_refused_unless_allowed(sim, tmp_path, header, allow):
    ids = sorted(sim.snapshots)[:3]
    sim.store.update(sim.snapshots[ids[0]], {"name": "autobk_snapshot_vbs_0001"})
    jobs = tmp_path / "jobs.csv"
    with jobs.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows([sid, sim.snapshots[sid]["name"], f"mine-{i}"] for i, sid in enumerate(ids))
    settings = load_settings({"endpoint": sim.url, "project_id": PROJECT, "token": TOKEN, "rate": 0,
                              "allow_autobk_prefix": allow, **FAST})
    result = await run_job(settings, JobSpec(InputSpec(str(jobs)), str(tmp_path / "r.csv")), on_terminal=False)

    rows = {r["snapshot_id"]: r for r in read_report(tmp_path / "r.csv")}
    sent = {r.snapshot_id for r in sim.requests if r.method == "PUT"}
    if allow:
        assert result.exit_code == 0 and sent == set(ids)
        assert sim.snapshots[ids[0]]["name"] == "mine-0"
    else:
        assert result.exit_code == 1 and sent == set(ids[1:])
        assert (rows[ids[0]]["outcome"], rows[ids[0]]["error_code"]) == ("rejected", "backup_owned")
        assert "belongs to a backup" in rows[ids[0]]["error_message"]
        assert "--allow-autobk-prefix" in rows[ids[0]]["error_message"]
        assert sim.snapshots[ids[0]]["name"] == "autobk_snapshot_vbs_0001"
        assert [rows[sid]["outcome"] for sid in ids[1:]] == ["applied", "applied"]
