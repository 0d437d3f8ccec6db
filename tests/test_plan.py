"""`snaprelabel plan` against a seeded simulator: selection, templates, the rules of run applied
to every render, --diff, and a plan that runs (and is undone) end to end."""

from __future__ import annotations

import csv
import io
import json

import pytest

from helpers import PROJECT, TOKEN, read_report, run_cli
from worker.api.auth import StaticToken
from worker.api.client import HttpSettings, ListingError, SnapshotApi, make_session
from worker.listing import list_snapshots
from worker.rate import RateLimiter
from worker.retry import Retrier, RetryPolicy
from worker.simulator import Fault
from worker.stop import Stop

ENV = {"SNAPRELABEL_TOKEN": TOKEN}
SYSTEM = json.dumps({"__system__enableActive": "true"})
# id, name, description, status, size, created_at, metadata
SEED = [
    ("11111111-1111-4111-8111-111111111111", "vol-web-01", "", "available", 10, "2024-01-05T08:00:00.000000", ""),
    ("22222222-2222-4222-8222-222222222222", "vol-db-02", "primary", "available", 20, "2024-02-10T23:59:59.000000", ""),
    ("33333333-3333-4333-8333-333333333333", "vol-db-03", "", "error", 30, "2024-02-11T00:00:00.000000", ""),
    ("44444444-4444-4444-8444-444444444444", "other-04", "", "available", 40, "2024-02-12T00:00:00.000000", ""),
    ("55555555-5555-4555-8555-555555555555", "vol-bk-05", "", "available", 50, "2024-02-13T00:00:00.000000", SYSTEM),
    ("66666666-6666-4666-8666-666666666666", "vol-big-06", "x" * 240, "available", 60,
     "2024-03-01T00:00:00.000000", ""),
    ("77777777-7777-4777-8777-777777777777", "vol-autobk-07", "", "available", 70, "2024-03-02T00:00:00.000000", ""),
    ("88888888-8888-4888-8888-888888888888", "autobk_snapshot_vbs_88", "", "available", 80,
     "2024-03-03T00:00:00.000000", ""),
    ("99999999-9999-4999-8999-999999999999", "vol-app-09", "", "available", 90, "2024-03-04T00:00:00.000000", ""),
]
MATCH = r"^vol-(?P<role>[a-z]+)-(?P<n>\d+)$"
NAME = "{role}_snapshot_{n}-{created_at:%Y%m%d}-s{size}"
DESCRIPTION = "{description} (was {name})"


@pytest.fixture
def seeded(sim_thread, tmp_path):
    path = tmp_path / "seed.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["id", "name", "description", "status", "size", "created_at", "metadata"])
        out.writerows(SEED)
    return sim_thread(seed_file=path)


def plan(sim, *args, env=ENV):
    return run_cli("plan", "--endpoint", sim.url, "--project-id", PROJECT, "--rate", "0",
                   "--backoff-base", "0.01", *args, env=env)


def jobs_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_templates_render_the_expected_jobs_and_renders_that_break_the_rules_are_rejected(seeded):
    done = plan(seeded, "--match", MATCH, "--name", NAME, "--description", DESCRIPTION,
                "--status", "available")
    assert done.returncode == 1, done.stderr  # some renders were rejected
    assert jobs_of(done.stdout) == [
        {"snapshot_id": "11111111-1111-4111-8111-111111111111", "project_id": PROJECT,
         "name": "web_snapshot_01-20240105-s10", "description": " (was vol-web-01)",
         "previous_name": "vol-web-01", "previous_description": "'"},  # a lone quote: known empty
        {"snapshot_id": "22222222-2222-4222-8222-222222222222", "project_id": PROJECT,
         "name": "db_snapshot_02-20240210-s20", "description": "primary (was vol-db-02)",
         "previous_name": "vol-db-02", "previous_description": "primary"},
        {"snapshot_id": "99999999-9999-4999-8999-999999999999", "project_id": PROJECT,
         "name": "app_snapshot_09-20240304-s90", "description": " (was vol-app-09)",
         "previous_name": "vol-app-09", "previous_description": "'"},
    ]
    err = done.stderr
    assert ("66666666-6666-4666-8666-666666666666 (vol-big-06): description: 257 bytes in "
            "UTF-8, the limit is 255 [too_long]") in err
    assert ("77777777-7777-4777-8777-777777777777 (vol-autobk-07): name: starts with "
            "'autobk_snapshot_'") in err and "[autobk_prefix]" in err
    # vol-db-03 (error) is not listed; vol-bk-05 is backup-owned (its metadata)
    assert ("8 snapshots listed, 6 matched: 3 jobs, 2 rejected (too_long 1, autobk_prefix 1), "
            "1 backup-owned left alone") in err
    assert "vol-bk-05" not in done.stdout


def test_diff_prints_old_to_new_and_the_totals_instead_of_jobs(seeded):
    done = plan(seeded, "--match", MATCH, "--name", NAME, "--created-after", "2024-02-01",
                "--created-before", "2024-03-01", "--diff")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["22222222-2222-4222-8222-222222222222", "name", "vol-db-02", "→",
                                "db_snapshot_02-20240210-s20"]
    assert lines[1].split()[1:] == ["name", "vol-db-03", "→", "db_snapshot_03-20240211-s30"]
    assert lines[-1] == ("9 snapshots listed, 3 matched: 2 jobs, 1 backup-owned left alone "
                         "(--allow-autobk-prefix to include them)")
    assert "snapshot_id,project_id" not in done.stdout


def test_backup_owned_snapshots_are_selected_only_when_allowed(seeded):
    done = plan(seeded, "--match", "^autobk_|^vol-bk", "--name", "{name}-kept")
    assert done.returncode == 0 and jobs_of(done.stdout) == []
    assert "2 backup-owned left alone" in done.stderr
    allowed = plan(seeded, "--match", "^autobk_|^vol-bk", "--name", "{name}-kept",
                   "--allow-autobk-prefix")
    assert [j["name"] for j in jobs_of(allowed.stdout)] == ["vol-bk-05-kept",
                                                           "autobk_snapshot_vbs_88-kept"]


@pytest.mark.parametrize("args, message", [
    (("--match", "x", "--name", "{nmae}"), "--name '{nmae}': unknown field {nmae}; fields are id, name"),
    (("--match", "(?P<env>x)", "--description", "{env}-{zone}"), "named groups of --match (env)"),
    (("--match", "(x", "--name", "y"), "--match '(x': missing ), unterminated subpattern"),
    (("--match", "x", "--name", "{name"), "expected '}' before end of string"),
    (("--match", "x"), "give --name TEMPLATE, --description TEMPLATE or both"),
    (("--match", "x", "--name", "y", "--created-after", "last week"), "--created-after 'last week': give a date"),
])
def test_a_bad_template_or_selection_is_one_line_exit_2_and_sends_nothing(seeded, args, message):
    done = plan(seeded, *args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert done.stdout == "" and seeded.sim.requests == []


def test_a_format_spec_that_fails_on_render_is_one_line_exit_2(seeded):
    done = plan(seeded, "--match", "vol", "--name", "{size:%Y}", "--output", "jobs.csv")
    assert done.returncode == 2
    assert "--name '{size:%Y}': cannot render for snapshot" in done.stderr
    assert done.stdout == ""


def test_listing_survives_transient_faults_and_pages(sim_thread, tmp_path):
    sim = sim_thread(snapshots=2500, faults=[Fault("503", 0.75)], autobk_fraction=0.0)
    done = plan(sim, "--match", r"^snap-(?P<n>\d+)$", "--name", "s{n}", "--output",
                str(tmp_path / "jobs.csv"))
    assert done.returncode == 0, done.stderr
    faults = sim.sim.fault_counts["503"]
    # the credential check's GET, 3 pages and the empty one that ends them; each failure asked again
    assert faults >= 1 and sim.sim.method_counts["GET"] == 1 + 4 + faults
    jobs = read_report(tmp_path / "jobs.csv")
    assert len(jobs) == 2500 and len({j["snapshot_id"] for j in jobs}) == 2500
    assert not (tmp_path / "jobs.csv.tmp").exists()


def test_refused_credentials_are_exit_2_and_leave_no_file(seeded, tmp_path):
    done = plan(seeded, "--match", "x", "--name", "y", "--output", str(tmp_path / "jobs.csv"),
                env={"SNAPRELABEL_TOKEN": "wrong-token"})
    assert done.returncode == 2
    assert "credentials (token) were refused" in done.stderr and done.stderr.count("\n") == 1
    assert list(tmp_path.glob("jobs.csv*")) == []


@pytest.mark.parametrize("sim", [{"faults": [Fault("503", 1.0)]}], indirect=True)
async def test_a_listing_that_keeps_failing_gives_up_after_max_attempts(sim):
    policy = RetryPolicy(max_attempts=3, base=0.001)
    async with make_session(HttpSettings()) as session:
        api = SnapshotApi(session, sim.url, "v2", StaticToken(TOKEN))
        with pytest.raises(ListingError, match="HTTP 503"):
            async for _ in list_snapshots(api, Retrier(policy, RateLimiter(0), Stop()), PROJECT):
                pass
    assert sim.method_counts["GET"] == 3


def test_plan_then_run_applies_exactly_the_plan_and_records_the_previous_values(seeded, tmp_path):
    jobs = tmp_path / "jobs.jsonl"
    done = plan(seeded, "--match", MATCH, "--name", "{role}_snapshot_{n}", "--description", "{role} disk",
                "--output", str(jobs), "--output-format", "jsonl")
    assert done.returncode == 1  # vol-autobk-07 renders autobk_... : rejected
    report = tmp_path / "report.csv"
    ran = run_cli("run", str(jobs), "--endpoint", seeded.url, "--rate", "0", "--report",
                  str(report), env=ENV)
    assert ran.returncode == 0, ran.stderr
    live = seeded.sim.snapshots
    rows = read_report(report)
    assert sorted(r["snapshot_id"][:2] for r in rows) == ["11", "22", "33", "66", "99"]
    for row in rows:
        start = next(s for s in SEED if s[0] == row["snapshot_id"])
        assert (row["previous_name"], row["previous_description"]) == (start[1], start[2] or "'")
        assert live[row["snapshot_id"]]["name"] == row["name"]
    assert live["77777777-7777-4777-8777-777777777777"]["name"] == "vol-autobk-07"


def test_plan_run_undo_returns_the_simulator_to_its_starting_state(seeded, tmp_path):
    """Needs issue 4's `snaprelabel undo REPORT`; skipped until it is merged. JSON Lines all the
    way, so that the empty descriptions the plan replaces can be put back (CSV cannot say "")."""
    if "undo" not in run_cli("--help").stdout:
        pytest.skip("PENDING issue 4: `snaprelabel undo` is not merged yet")
    start = {sid: (s["name"], s["description"]) for sid, s in seeded.sim.snapshots.items()}
    jobs = tmp_path / "jobs.jsonl"
    plan(seeded, "--match", MATCH, "--name", "{role}_snapshot_{n}", "--description", "{role} disk",
         "--output", str(jobs), "--output-format", "jsonl")
    report = tmp_path / "report.jsonl"
    assert run_cli("run", str(jobs), "--endpoint", seeded.url, "--rate", "0", "--report",
                   str(report), "--report-format", "jsonl", env=ENV).returncode == 0
    changed = {sid for sid, s in seeded.sim.snapshots.items() if (s["name"], s["description"]) != start[sid]}
    assert len(changed) == 5
    undo = run_cli("undo", str(report), "--format", "jsonl", "--output", str(tmp_path / "undo.jsonl"),
                   env=ENV)
    assert undo.returncode == 0, undo.stderr
    assert run_cli("run", str(tmp_path / "undo.jsonl"), "--endpoint", seeded.url, "--project-id",
                   PROJECT, "--rate", "0", "--report", str(tmp_path / "undo-report.csv"),
                   env=ENV).returncode == 0
    assert {sid: (s["name"], s["description"]) for sid, s in seeded.sim.snapshots.items()} == start


def test_listed_names_that_are_not_text_are_read_as_empty_not_a_traceback(seeded):
    # A server's JSON is input too: a null or numeric name once crashed the backup-owned check.
    seeded.sim.snapshots["44444444-4444-4444-8444-444444444444"]["name"] = None
    seeded.sim.snapshots["99999999-9999-4999-8999-999999999999"]["name"] = 7
    done = plan(seeded, "--match", "^$", "--name", "renamed-{id:.8}")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    planned = {j["snapshot_id"][:2]: j for j in jobs_of(done.stdout)}
    assert set(planned) == {"44", "99"}
    assert planned["99"]["name"] == "renamed-99999999" and planned["99"]["previous_name"] == "'"


async def test_a_listing_whose_server_ignores_the_marker_ends_with_one_error_not_forever():
    # The same page whatever the marker, with items that are not snapshots among it: plan once
    # paged such a server forever, and a malformed item was a traceback.
    from aiohttp import web

    page = {"snapshots": [{"id": "11111111-1111-4111-8111-111111111111", "name": "a"}, "junk",
                          {"name": "no id"}, {"id": "22222222-2222-4222-8222-222222222222", "name": 7}]}
    asked: list[str] = []

    async def detail(request: web.Request) -> web.Response:
        asked.append(request.query.get("marker", ""))
        return web.json_response(page)

    app = web.Application()
    app.router.add_get("/v2/{project}/snapshots/detail", detail)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]  # started
    seen = []
    try:
        async with make_session(HttpSettings()) as session:
            api = SnapshotApi(session, url, "v2", StaticToken(TOKEN))
            with pytest.raises(ListingError, match="do not advance"):
                async for snapshot in list_snapshots(api, Retrier(RetryPolicy(), RateLimiter(0), Stop()),
                                                     PROJECT):
                    seen.append(snapshot["id"][:2])
    finally:
        await runner.cleanup()
    assert seen == ["11", "22"] and len(asked) == 2  # the first page, then the same one again
