"""The confirmation before a big job, as a person at a terminal meets it (a real pseudo-terminal),
and its absence everywhere a person is not there."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time

from helpers import PROJECT, ROOT, TOKEN, read_report, relabel_targets, run_cli, write_jobs

ENV = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "SNAPRELABEL_TOKEN": TOKEN,
       "TERM": "dumb", "COLUMNS": "120"}


def job_args(sim, jobs, report, *extra):
    return ("run", str(jobs), "--endpoint", sim.url, "--project-id", PROJECT, "--rate", "0",
            "--report", str(report), *extra)


def on_a_terminal(args, answer: str | None, timeout: float = 60) -> tuple[int, str]:
    """Runs the CLI with stdin, stdout and stderr on a pseudo-terminal; types `answer` once the
    question shows ("^C": sends SIGINT instead; None: expect no question). Returns the exit code
    and the screen text."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "worker", *args], cwd=ROOT, env=ENV,
                            stdin=secondary, stdout=secondary, stderr=secondary, close_fds=True)
    os.close(secondary)
    screen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(primary, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                screen += chunk
                if answer is not None and b"[y/N]" in screen:
                    if answer == "^C":
                        proc.send_signal(signal.SIGINT)
                    else:
                        os.write(primary, answer.encode() + b"\n")
                    answer = None
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=10), screen.decode("utf-8", "replace")
    finally:
        proc.kill()
        os.close(primary)


def test_a_big_job_on_a_terminal_shows_totals_and_samples_and_a_no_sends_nothing(sim_thread, tmp_path):
    sim = sim_thread(snapshots=1100)
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 1050),
                      [["not-a-uuid", "x"]])
    code, screen = on_a_terminal(job_args(sim, jobs, tmp_path / "r.csv"), "n")

    assert code == 2, screen
    assert "1,051 rows: 1,050 changes to send, 1 rejected (invalid_uuid 1)" in screen
    first = sorted(sim.sim.snapshots)[0]
    assert f"line 2: {first} name: 'new-00000'" in screen
    assert "not confirmed: nothing was sent" in screen
    # Asked once the credentials were proven (one GET); no PUT, no report.
    assert [r.method for r in sim.sim.requests] == ["GET"] and not (tmp_path / "r.csv").exists()


def test_ctrl_c_at_the_question_stops_at_once(sim_thread, tmp_path):
    sim = sim_thread(snapshots=1100)
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 1050))
    code, screen = on_a_terminal(job_args(sim, jobs, tmp_path / "r.csv"), "^C", timeout=20)
    assert code == 130, screen
    assert [r.method for r in sim.sim.requests] == ["GET"] and not (tmp_path / "r.csv").exists()


def test_yes_at_the_question_runs_the_job(sim_thread, tmp_path):
    sim = sim_thread(snapshots=1100)
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 1001))
    code, screen = on_a_terminal(job_args(sim, jobs, tmp_path / "r.csv"), "y")
    assert code == 0, screen
    assert "Apply 1,001 changes? [y/N]" in screen
    assert len(read_report(tmp_path / "r.csv")) == 1001


def test_no_question_with_yes_for_a_small_job_or_off_a_terminal(sim_thread, tmp_path):
    sim = sim_thread(snapshots=1100)
    targets = relabel_targets(sim.sim.snapshots, 1001)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    code, screen = on_a_terminal(job_args(sim, jobs, tmp_path / "a.csv", "--yes"), None)
    assert code == 0 and "[y/N]" not in screen

    small = write_jobs(tmp_path / "small.csv", dict(list(targets.items())[:1000]))
    code, screen = on_a_terminal(job_args(sim, small, tmp_path / "b.csv", "--overwrite"), None)
    assert code == 0 and "[y/N]" not in screen

    done = run_cli(*job_args(sim, jobs, tmp_path / "c.csv"), env={"SNAPRELABEL_TOKEN": TOKEN},
                   stdin=b"")  # stdin is a pipe, not a terminal
    assert done.returncode == 0 and b"[y/N]" not in done.stderr
