"""What durability costs: rows/s of `snaprelabel run` with and without --fsync, side by side in
one run, against the simulator in its own process (so client and server do not share a GIL).

    .venv/bin/python bench/durability.py [--rows 20000] [--rounds 3] [--rate 0] [--code DIR ...]

Each round runs every variant once, in turn, so drift (other load on the machine) hits them all;
the best round of each is reported, the least disturbed by other work on a shared machine.
`--code DIR` adds the same runs with another checkout's package (e.g. main), for comparisons.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "0123456789abcdef0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_simulator(rows: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker", "simulate", "--port", str(port), "--snapshots", str(rows),
         "--project-id", PROJECT, "--no-auth", "--no-record"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/_sim/health", timeout=1)
            return proc, url
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the simulator did not start")


def write_jobs(path: Path, url: str, rows: int) -> None:
    ids = []
    marker = None
    while len(ids) < rows:
        query = f"limit=1000{'&marker=' + marker if marker else ''}"
        with urllib.request.urlopen(f"{url}/v2/{PROJECT}/snapshots/detail?{query}") as resp:
            page = json.load(resp)["snapshots"]
        if not page:
            break
        ids += [s["id"] for s in page]
        marker = page[-1]["id"]
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["snapshot_id", "name"])
        out.writerows([sid, f"bench-{i:07d}-{time.time_ns() % 1000}"] for i, sid in enumerate(ids[:rows]))


def run_once(code: Path, url: str, jobs: Path, report: Path, extra: list[str],
             rate: float = 0) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the snaprelabel process)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "worker", "run", str(jobs), "--endpoint", url, "--no-auth",
         "--project-id", PROJECT, "--rate", str(rate), "--concurrency", "32", "--report", str(report),
         "--overwrite", "--log-level", "warning", *extra],
        cwd=code, env=env, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=0, help="requests/s; 0: no limit (default)")
    parser.add_argument("--code", action="append", default=[], help="another checkout to compare")
    args = parser.parse_args()
    sim, url = start_simulator(args.rows)
    variants = [("this checkout", ROOT, ["--no-fsync"]), ("this checkout --fsync", ROOT, ["--fsync"])]
    variants += [(f"{code} (its default)", Path(code), []) for code in args.code]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in variants}
    try:
        with tempfile.TemporaryDirectory(dir=ROOT) as tmp:  # the project's disk, not a tmpfs
            jobs, report = Path(tmp) / "jobs.csv", Path(tmp) / "report.csv"
            write_jobs(jobs, url, args.rows)
            for _ in range(args.rounds):
                for name, code, extra in variants:
                    times[name].append(run_once(code, url, jobs, report, extra, args.rate))
    finally:
        sim.terminate()
        sim.wait()
    limit = f"rate {args.rate:g}/s" if args.rate else "no rate limit"
    print(f"{args.rows} rows, concurrency 32, {limit}, best of {args.rounds} rounds (wall "
          f"time of the whole command, start-up included; CPU of the snaprelabel process)")
    base = min(wall for wall, _ in times[variants[0][0]])
    for name, _, _ in variants:
        wall = min(w for w, _ in times[name])
        cpu = min(c for _, c in times[name])
        print(f"  {name:40s} {args.rows / wall:6.0f} rows/s (x{base / wall:.2f})  "
              f"{1000 * cpu / args.rows:.3f} CPU s per 1,000 rows")


if __name__ == "__main__":
    main()
