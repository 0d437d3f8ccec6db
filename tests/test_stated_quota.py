"""A fixed --rate is a ceiling: a lower quota the gateway states in its 429s wins, once warned;
a 429 that states no quota (an injected fault, a proxy) changes nothing."""

from __future__ import annotations

from helpers import PROJECT, TOKEN, read_report, relabel_targets, run_cli, write_jobs

SLOWING = "the API states a lower quota than --rate"


def run(sim, tmp_path, rate: str):
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 120))
    return run_cli("run", str(jobs), "--report", str(tmp_path / "r.csv"), "--endpoint", sim.url,
                   "--project-id", PROJECT, "--rate", rate, "--concurrency", "8",
                   env={"SNAPRELABEL_TOKEN": TOKEN})


def test_a_fixed_rate_above_a_stated_quota_slows_to_it_and_says_so_once(sim_thread, tmp_path):
    sim = sim_thread(snapshots=150, tokens={TOKEN}, quota="20/s")  # 429s say limit:20,time:1 second
    done = run(sim, tmp_path, "100")
    assert done.returncode == 0, done.stderr[-2000:]
    assert {r["outcome"] for r in read_report(tmp_path / "r.csv")} == {"applied"}
    assert (done.stdout + done.stderr).count(SLOWING) == 1
    stats = sim.sim.quota.stats()
    # At 100/s against 20/s four requests in five would be refused; slowed, only the first
    # window's overflow is.
    assert stats["throttled"] < 0.2 * (stats["accepted"] + stats["throttled"]), stats


def test_an_injected_429_states_no_quota_and_the_rate_stands(sim_thread, tmp_path):
    sim = sim_thread(snapshots=150, tokens={TOKEN}, faults=["429:0.2", "429-retry-after:0.05"])
    done = run(sim, tmp_path, "100")
    assert done.returncode == 0, done.stderr[-2000:]
    assert {r["outcome"] for r in read_report(tmp_path / "r.csv")} == {"applied"}
    assert sum(int(r["attempts"]) > 1 for r in read_report(tmp_path / "r.csv")) > 0  # 429s happened
    assert SLOWING not in done.stdout + done.stderr
