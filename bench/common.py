"""What every scenario needs: targets started on loopback, client and server pinned to different
cores, child processes measured (wall time, CPU time, peak RSS), jobs files, medians."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"  # generated inputs, reports and logs (git-ignored)
PY = sys.executable  # the project's environment: snaprelabel, the simulator, the bare loop
PEER_VENV = BENCH / ".venv"  # the peer SDKs and profilers: never the project's environment
PEER_PY = PEER_VENV / "bin" / "python"
PROJECT = "0123456789abcdef0123456789abcdef"
# The snaprelabel code the children run (`python -m worker` from there): this checkout, or
# another one (BENCH_CODE=/path/to/a/checkout).
CODE = Path(os.environ.get("BENCH_CODE", ROOT)).resolve()
# A checkout of the code before this work, for before/after rows (`python -m bench --before`).
BEFORE: Path | None = None

# Two cores here: the client on one, the target on the other. One core: no pinning.
_CPUS = sorted(os.sched_getaffinity(0))
CLIENT_CPU, SERVER_CPU = (_CPUS[0], _CPUS[1]) if len(_CPUS) >= 2 else (None, None)


def pinned(cpu: int | None):
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def loadavg() -> float:
    """The one-minute load average, recorded beside every figure (the machine is shared)."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Measured:
    rc: int
    wall_s: float
    cpu_s: float  # user + system of the child
    max_rss_mb: float
    load: float  # one-minute load average when it finished
    stdout: str = ""
    stderr: str = ""


def measure(cmd: Sequence[str], cpu: int | None = CLIENT_CPU, env: dict[str, str] | None = None,
            stdout_path: Path | None = None, timeout: float = 1800,
            cwd: Path | None = None) -> Measured:
    """Run a child to its end, pinned to `cpu`: its own wall time, CPU time and peak RSS (wait4).
    Its stdout goes to `stdout_path` (kept) or is returned."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = stdout_path or OUT / f"stdout-{os.getpid()}.txt"
    with open(path, "w") as out, open(OUT / f"stderr-{os.getpid()}.txt", "w+") as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd or CODE,
                                env={**os.environ, **(env or {})}, preexec_fn=pinned(cpu))
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read()
    stdout = "" if stdout_path else path.read_text()
    return Measured(proc.returncode, wall, usage.ru_utime + usage.ru_stime,
                    usage.ru_maxrss / 1024, loadavg(), stdout, stderr)


class Target:
    """A server on loopback in its own process, pinned to the server core.

    kind "static": bench/static_target.py, fastest, checks nothing (throughput scenarios).
    kind "simulator": the bundled simulator, `--no-auth`, lean unless `record` is asked for.
    """

    def __init__(self, kind: str, *args: str, record: bool = False) -> None:
        if kind == "static":
            cmd = [PY, str(BENCH / "static_target.py")]
        else:
            cmd = [PY, "-m", "worker.simulator", "--port", "0", "--no-auth", "--autobk-fraction",
                   "0", "--project-id", PROJECT, *([] if record else ["--no-record"])]
        self.kind = kind
        self.proc = subprocess.Popen([*cmd, *args], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, cwd=ROOT,
                                     preexec_fn=pinned(SERVER_CPU))
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()
        match = re.search(r"listening on (http://\S+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"{kind} target did not start: {line}{self.proc.stderr.read()}")
        self.url = match.group(1)

    def control(self, path: str, body: Any = None) -> Any:
        """The simulator's /_sim/ control API."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def arrivals(self) -> list[tuple[float, int | None]]:
        """(arrival time on the server's monotonic clock, status) of every recorded request."""
        out: list[tuple[float, int | None]] = []
        since = 0
        while True:
            page = self.control(f"/_sim/requests?since={since}")
            out.extend((r["t_mono"], r["status"]) for r in page["requests"])
            if page["next"] == since:
                return out
            since = page["next"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def simulator_ids(count: int, seed: int = 42) -> list[str]:
    """The ids the simulator seeds with `--snapshots count --seed seed` (same generator)."""
    from worker.simulator.seeding import generate

    return [row["id"] for row in generate(count, PROJECT, seed, 0.0)]


def synthetic_ids(count: int) -> Iterator[str]:
    """Distinct canonical UUIDs without holding them: for targets that accept any id."""
    for i in range(count):
        h = f"{i:032x}"
        yield f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:]}"


def write_jobs(path: Path, ids: Iterator[str] | list[str]) -> Path:
    """An inventory-style jobs file: snapshot_id, project_id, name (streamed to disk)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["snapshot_id", "project_id", "name"])
        for i, sid in enumerate(ids):
            out.writerow([sid, PROJECT, f"bench-{i:07d}"])
    return path


def snaprelabel(jobs: Path, endpoint: str | None, *flags: str, report: Path | None = None,
                module: str = "worker") -> list[str]:
    """The command line a user would type (as `python -m worker`, same entry point)."""
    report = report or OUT / f"{jobs.stem}.report.csv"
    cmd = [PY, "-m", module, "run", str(jobs), "--project-id", PROJECT, "--report", str(report),
           "--overwrite", "--log-format", "json", *flags]
    if endpoint:
        cmd += ["--endpoint", endpoint, "--no-auth"]
    else:
        cmd += ["--dry-run"]
    return cmd


def summary_event(log_path: Path) -> dict[str, Any]:
    """The `summary` event of a snaprelabel run's JSON log."""
    with log_path.open("rb") as f:
        f.seek(max(0, log_path.stat().st_size - 8192))
        for line in reversed(f.read().decode("utf-8", "replace").splitlines()):
            if '"event": "summary"' in line or '"event":"summary"' in line:
                return json.loads(line)
    raise RuntimeError(f"no summary event in {log_path}")
