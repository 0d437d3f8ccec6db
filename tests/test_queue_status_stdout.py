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
