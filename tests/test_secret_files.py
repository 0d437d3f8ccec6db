"""Secrets from files that are replaced while the tool runs (a Kubernetes Secret mounted as a volume
and rotated): --token-file / SNAPRELABEL_TOKEN_FILE and --redis-url-file /
SNAPRELABEL_REDIS_URL_FILE are read again when they change, so a long-running job or consumer
keeps working, and the new values are as secret as the old."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from helpers import FAST, PROJECT, TOKEN, read_report, relabel_targets, run_cli, write_jobs
from queue_helpers import (  # noqa: F401 - fixtures
    consumers,
    enqueue,
    pending_count,
    redis_server,
    results,
    sync_client,
    wait_for,
)
from worker.runner import JobSpec, run_job
from worker.settings import load_settings
from worker.sources import InputSpec

NEW_TOKEN = "rotated-token-51c0e8d2"


def replace(path: Path, text: str) -> None:
    """What the kubelet does to a Secret volume: the new file is written aside, then swapped in."""
    aside = path.with_name(f".{path.name}.new")
    aside.write_text(text + "\n", encoding="utf-8")
    os.replace(aside, path)


async def test_a_token_file_rotated_mid_job_keeps_the_job_applying(sim, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")

    async def rotate_after(n):
        while sum(sim.apply_counts.values()) < n:
            await asyncio.sleep(0.01)
        replace(token_file, NEW_TOKEN)  # the Secret is renewed, then the old token stops working
        sim.identity.static_tokens = frozenset({NEW_TOKEN})

    targets = relabel_targets(sim.snapshots, 300)
    jobs = write_jobs(tmp_path / "jobs.csv", targets)
    report = tmp_path / "report.csv"
    settings = load_settings({"endpoint": sim.url, "token_file": str(token_file), "project_id": PROJECT,
                              "rate": 100, "concurrency": 16, **FAST})
    rotator = asyncio.create_task(rotate_after(100))
    result = await run_job(settings, JobSpec(InputSpec(str(jobs)), str(report)), on_terminal=False)
    await rotator

    rows = read_report(report)
    refused = [r for r in sim.requests if r.method == "PUT" and r.status == 401]
    assert refused, "no request met the revoked token"
    assert result.exit_code == 0 and {r["outcome"] for r in rows} == {"applied"} and len(rows) == 300
    assert all(sim.snapshots[sid]["name"] == name for sid, name in targets.items())
    # Each request refused was sent once more, with the new token.
    assert {r["attempts"] for r in rows if r["snapshot_id"] in {q.snapshot_id for q in refused}} == {"2"}
    text = report.read_text(encoding="utf-8")
    assert TOKEN not in text and NEW_TOKEN not in text


async def test_a_token_file_left_unchanged_stops_the_job_when_its_token_is_revoked(sim, tmp_path):
    # The other side of the test above: the new token comes from the file, it is not guessed.
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")

    async def revoke_after(n):
        while sum(sim.apply_counts.values()) < n:
            await asyncio.sleep(0.01)
        sim.identity.static_tokens = frozenset({NEW_TOKEN})

    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.snapshots, 300))
    settings = load_settings({"endpoint": sim.url, "token_file": str(token_file), "project_id": PROJECT,
                              "rate": 100, "concurrency": 16, **FAST})
    revoker = asyncio.create_task(revoke_after(100))
    result = await run_job(settings, JobSpec(InputSpec(str(jobs)), str(tmp_path / "r.csv")), on_terminal=False)
    await revoker
    assert result.exit_code == 3
    assert "401" in {r["http_status"] for r in read_report(tmp_path / "r.csv")}


def test_the_token_file_comes_from_the_environment_and_its_token_stays_secret(sim_thread, tmp_path):
    sim = sim_thread(snapshots=20)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    jobs = write_jobs(tmp_path / "jobs.csv", relabel_targets(sim.sim.snapshots, 10))
    done = run_cli("run", str(jobs), "--report", str(tmp_path / "r.csv"), "--rate", "0", env={
        "SNAPRELABEL_ENDPOINT": sim.url, "SNAPRELABEL_PROJECT_ID": PROJECT,
        "SNAPRELABEL_TOKEN_FILE": str(token_file)})
    assert done.returncode == 0, done.stderr
    assert {r["outcome"] for r in read_report(tmp_path / "r.csv")} == {"applied"}
    assert TOKEN not in done.stdout + done.stderr


@pytest.mark.parametrize(("content", "expected"), [(None, "is not a readable file"), ("", "is empty")])
def test_a_missing_or_empty_token_file_is_one_line_and_exit_2(tmp_path, content, expected):
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content, encoding="utf-8")
    jobs = write_jobs(tmp_path / "jobs.csv", {"0" * 8 + "-0000-0000-0000-" + "0" * 12: "x"})
    done = run_cli("run", str(jobs), "--report", str(tmp_path / "r.csv"), "--endpoint", "http://127.0.0.1:9",
                   "--token-file", str(token_file))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(token_file) in lines[0], done.stderr


def test_a_redis_url_file_rotated_mid_run_keeps_the_consumer_working(
        sim_thread, redis_server, consumers, tmp_path):
    old, new = "old-redis-pass-7d1", "new-redis-pass-9e4"
    server = redis_server(False, "--requirepass", old)
    url = f"redis://:{old}@127.0.0.1:{server.port}/0"
    url_file = tmp_path / "redis-url"
    url_file.write_text(url + "\n", encoding="utf-8")
    sim = sim_thread(snapshots=400, latency=0.02)
    targets = relabel_targets(sim.sim.snapshots, 400)
    stream = "rotate:jobs"
    enqueue(url, stream, write_jobs(tmp_path / "jobs.csv", targets), tmp_path)
    client = sync_client(url)

    # --redis holds a URL that never works: the file wins.
    consumer = consumers("redis://127.0.0.1:9/0", stream, sim.url, "c", "--redis-url-file", str(url_file),
                         "--until-empty", "--rate", "100", "--redis-wait", "5")
    wait_for(lambda: client.xlen("rotate:results") >= 50, 60, what="the job to be under way")
    # The password is rotated: Redis takes only the new one, the Secret holds the new URL, and the
    # consumer's connections are dropped (a restart or a failover would drop them too).
    client.config_set("requirepass", new)
    replace(url_file, f"redis://:{new}@127.0.0.1:{server.port}/0")
    client.client_kill_filter(_type="normal", skipme=True)

    assert consumer.wait(60) == 0, consumer.stderr()
    client = sync_client(f"redis://:{new}@127.0.0.1:{server.port}/0")
    entries = results(client, stream)
    assert sorted(e["snapshot_id"] for e in entries) == sorted(targets)
    assert {e["outcome"] for e in entries} == {"applied"} and pending_count(client, stream) == 0
    assert any(e["event"] == "redis url file changed: reconnecting with the new URL" for e in consumer.events())
    output = consumer.log_path.read_text() + consumer.stderr()
    assert old not in output and new not in output
