"""`plan` whose --match matches no name listed exits 1 and shows what the names look like (the
docs' '^db-' examples against the simulator's snap-NNNNNN names said "0 matched", exit 0)."""

from __future__ import annotations

from helpers import PROJECT, TOKEN, run_cli


def test_a_match_of_nothing_is_exit_1_and_shows_the_names(sim_thread):
    sim = sim_thread(snapshots=20)
    done = run_cli("plan", "--endpoint", sim.url, "--project-id", PROJECT, "--rate", "0", "--match", "^db-",
                   "--name", "x-{id:.8}", env={"SNAPRELABEL_TOKEN": TOKEN})
    assert done.returncode == 1, done.stderr
    assert "plan: 20 snapshots listed, 0 matched: 0 jobs" in done.stderr
    assert "plan: nothing matched: the names listed look like 'snap-000000', 'snap-000001', 'snap-000002'" \
        in done.stderr
