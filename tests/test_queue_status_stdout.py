"""`queue status --json` keeps stdout for the JSON: during a Redis outage its warnings go to
stderr (they were printed on stdout, console-formatted, before the JSON)."""

from __future__ import annotations

from helpers import run_cli


def test_warnings_during_an_outage_go_to_stderr():
    done = run_cli("queue", "status", "--json", "--redis", "redis://127.0.0.1:1/0", "--redis-wait", "1")
    assert done.returncode == 4
    assert done.stdout == ""
    assert "redis unreachable: reconnecting" in done.stderr
    assert "snaprelabel queue status: error: Redis at redis://127.0.0.1:1/0 unreachable" in done.stderr


def test_a_stopped_consumers_pending_jobs_are_said_to_be_claimable():
    from worker.queue.status import ConsumerStatus, QueueStatus, render

    status = QueueStatus("s", "g", group_exists=True, length=5, waiting=0, pending=5, consumers=[
        ConsumerStatus("a-stopped", 3, 75.0), ConsumerStatus("b-busy", 2, 0.4), ConsumerStatus("c-idle", 0, 99.0)])
    lines = render(status, claim_idle=60).splitlines()
    assert "  a-stopped: 3 pending, idle 75.0 s (claimable now: idle past --claim-idle 60 s, a running " \
           "consumer takes them over)" in lines
    assert "  b-busy: 2 pending, idle 0.4 s (if it has stopped, a running consumer takes them over once " \
           "idle 60 s)" in lines
    assert "  c-idle: 0 pending, idle 99.0 s" in lines
