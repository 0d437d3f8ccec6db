"""The README's "try it against the simulator" recipe: `simulate` with its defaults and
`demo --write-only` agree on the snapshots, the simulator names its token, and `--no-auth` with a
user is an error. Before, `simulate --snapshots 10000` seeded other ids than the demo's file (every
row 404, exit 3) and `--no-auth --user` dropped the user silently."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

from helpers import PROJECT, ROOT, read_report, run_cli


def test_the_demo_file_matches_the_simulator_it_names(tmp_path):
    written = run_cli("demo", "--write-only", "--rows", "50", "--dir", str(tmp_path / "try"))
    assert written.returncode == 0, written.stderr
    count = re.search(r"`snaprelabel simulate --snapshots (\d+)`", written.stderr)
    assert count and f"(project {PROJECT})" in written.stderr and "exit 1 when they run" in written.stderr
    server = subprocess.Popen([sys.executable, "-m", "worker", "simulate", "--port", "0", "--snapshots", count[1]],
                              stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        started = server.stderr.readline()
        assert "; token sim-token)" in started, started
        url = re.search(r"listening on (\S+)", started)[1]
        done = run_cli("run", str(tmp_path / "try" / "jobs.csv"), "--project-id", PROJECT, "--rate", "0",
                       "--report", str(tmp_path / "r.csv"),
                       env={"SNAPRELABEL_TOKEN": "sim-token", "SNAPRELABEL_ENDPOINT": url})
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(30)
    assert done.returncode == 1, done.stderr  # the demo's bad rows, by design
    outcomes = [r["outcome"] for r in read_report(tmp_path / "r.csv")]
    assert (outcomes.count("applied"), outcomes.count("rejected"), outcomes.count("failed")) == (50, 5, 1)


def test_no_auth_with_a_user_is_an_error():
    done = run_cli("simulate", "--port", "0", "--no-auth", "--user", "alice:pw")
    assert done.returncode == 2
    assert done.stderr.strip() == ("simulator: --no-auth accepts every request: drop --user/--access-key/"
                                   "--app-credential/--metadata-key-lifetime, or --no-auth")
