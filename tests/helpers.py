"""Helpers shared by the tests: jobs files built from the simulator's snapshots, reports read
back, the CLI run as a real child process."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

from worker.simulator import SimulatorConfig

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "0123456789abcdef0123456789abcdef"
TOKEN = "test-token-7f3a9c"
# Where tests look for an instance metadata service (`auto` with nothing else set probes it):
# a closed port, so no test ever asks whatever answers at 169.254.169.254 on the machine.
NO_METADATA = {"SNAPRELABEL_METADATA_URL": "http://127.0.0.1:9"}
# Short waits keep the suite quick; the behaviour under test is the same.
FAST = {"backoff_base": 0.01, "backoff_cap": 0.2, "throttled_backoff": 0.05}


def sim_config(**overrides) -> SimulatorConfig:
    values = {"snapshots": 300, "project_id": PROJECT, "tokens": {TOKEN}, "autobk_fraction": 0.0}
    values.update(overrides)
    return SimulatorConfig(**values)


def relabel_targets(snapshots: dict, count: int | None = None, prefix: str = "new") -> dict[str, str]:
    ids = sorted(snapshots)[:count]
    return {sid: f"{prefix}-{i:05d}" for i, sid in enumerate(ids)}


def write_jobs(path: Path, targets: dict[str, str], extra_rows: list[list[str]] = ()) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["snapshot_id", "name"])
        out.writerows([sid, name] for sid, name in targets.items())
        out.writerows(extra_rows)
    return path


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`snaprelabel ARGS` in a child process, as a user runs it (not a terminal: JSON logs)."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("SNAPRELABEL_", "OS_", "HUAWEICLOUD_SDK_"))}
    full_env.update({**NO_METADATA, **(env or {})})
    return subprocess.run(
        [sys.executable, "-m", "worker", *args], input=stdin, capture_output=True, timeout=timeout,
        env=full_env, cwd=ROOT if stdin is None else None, text=stdin is None,
    )


def wait_for(condition, timeout: float = 60.0, interval: float = 0.05, what: str = "condition",
             proc: subprocess.Popen | None = None):
    """Polls `condition()` until it returns something true, and returns that. Tests wait so for
    a child process to get going instead of sleeping a fixed time, which a loaded machine
    outlasts. Fails the test naming `what` after `timeout` s, or at once when the child `proc`
    has exited meanwhile (its stderr in the message, when it is a pipe)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr is not None else ""
            raise AssertionError(f"the child exited with code {proc.returncode} before {what}: {err}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def sim_settings(sim, **overrides):
    """Settings for a job against the in-process simulator: its token, unpaced, fast retries."""
    from worker.settings import load_settings

    return load_settings({"endpoint": sim.url, "project_id": PROJECT, "token": TOKEN, "rate": 0,
                          "concurrency": 4, **FAST, **overrides})


async def run_jobs_file(sim, jobs, report, resume=False, **overrides):
    """`run JOBS --report REPORT` in-process against the simulator."""
    from worker.runner import JobSpec, run_job
    from worker.sources import InputSpec

    spec = JobSpec(InputSpec(str(jobs)), str(report), resume=resume)
    return await run_job(sim_settings(sim, **overrides), spec, on_terminal=False)
