"""`snaprelabel demo`: the main job, end to end, on the bundled simulator; no cloud account.

Starts the simulator in-process (with a few transient faults, so retries show), writes an
inventory-style jobs CSV with some deliberately bad rows, runs the job, and checks the
simulator's state against the report."""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sys
from pathlib import Path
from typing import Any

from .. import exitcodes
from ..errors import ConfigError
from ..logs import configure
from ..results import Outcome
from ..runner import JobSpec, run_job
from ..settings import load_settings
from ..sources import InputSpec
from .parser import Parser

DEMO_TOKEN = "demo-token-not-a-secret"
PROJECT = "0123456789abcdef0123456789abcdef"
UNKNOWN_SNAPSHOT = "00000000-0000-4000-8000-000000000000"


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    parser = sub.add_parser("demo", help="run the main job on the bundled simulator",
                            description="Start the simulator, write a sample jobs file (with a "
                                        "few bad rows), relabel, print the summary and check "
                                        "the simulator's state.")
    parser.add_argument("--dir", default="snaprelabel-demo",
                        help="where the jobs file and report go (default ./snaprelabel-demo)")
    parser.add_argument("--rows", type=int, default=2000, help="jobs to run (default 2000)")
    parser.add_argument("--rate", type=float, default=400.0, help="requests per second (default 400)")
    parser.add_argument("--write-only", action="store_true",
                        help="only write the jobs file, for the snapshots `snaprelabel simulate "
                             "--snapshots N` serves (N is printed); run nothing")
    parser.set_defaults(handler=main)


def _seeded(rows: int) -> int:
    """How many snapshots the demo's simulator holds: `simulate --snapshots` with this number
    (and its default seed and project) serves the very same ones."""
    return max(rows + 100, 3000)


def write_only(args: argparse.Namespace) -> int:
    from ..simulator.seeding import generate

    workdir = Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    count = _seeded(args.rows)
    bad = write_jobs(workdir / "jobs.csv", generate(count, PROJECT, 42, 0.02), args.rows)
    print(f"demo: {args.rows} jobs (+{bad} deliberately bad rows: exit 1 when they run) in "
          f"{workdir / 'jobs.csv'}, for the snapshots of `snaprelabel simulate --snapshots {count}` "
          f"(project {PROJECT})", file=sys.stderr)
    return exitcodes.OK


def write_jobs(path: Path, snapshots: list[dict[str, Any]], rows: int) -> int:
    """An exported inventory with new_name/new_description added; returns the bad rows written."""
    good = [s for s in snapshots if not s["name"].startswith("autobk_snapshot_")][:rows]
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["ID", "Name", "Description", "Status", "Size", "new_name", "new_description"])
        for i, snap in enumerate(good):
            new_description = f"每日备份 {snap['created_at'][:10]}, relabelled" if i % 3 == 0 else ""
            out.writerow([snap["id"], snap["name"], snap.get("description") or "", snap["status"],
                          snap["size"], f"prod-{snap['volume_id'][:8]}-{i:05d}", new_description])
        first = good[0]
        bad = [
            ["not-a-uuid", "x", "", "available", 1, "prod-bad-id", ""],  # rejected: id
            [good[1]["id"], "x", "", "available", 1, "名" * 86, ""],  # rejected: 258 bytes
            [good[2]["id"].upper(), "x", "", "available", 1, "prod-upper", ""],  # rejected: case
            [first["id"], "x", "", "available", 1, "prod-duplicate", ""],  # rejected: duplicate
            [good[3]["id"], "x", "", "available", 1, "autobk_snapshot_mine", ""],  # rejected
            [UNKNOWN_SNAPSHOT, "x", "", "available", 1, "prod-ghost", ""],  # failed: 404
        ]
        out.writerows(bad)
    return len(bad)


async def _demo(args: argparse.Namespace) -> int:
    from ..simulator import Fault, Simulator, SimulatorConfig

    workdir = Path(args.dir)
    jobs_path, report_path = workdir / "jobs.csv", workdir / "report.csv"
    try:  # an unwritable directory (a container's read-only /work): one line, exit 2
        workdir.mkdir(parents=True, exist_ok=True)
        jobs_path.touch()
    except OSError as exc:
        raise ConfigError(f"cannot write its files in {os.path.abspath(workdir)}: "
                          f"{exc.strerror or exc}; give --dir a writable directory") from None
    config = SimulatorConfig(
        snapshots=_seeded(args.rows), project_id=PROJECT, tokens=frozenset({DEMO_TOKEN}),
        faults=[Fault("503", 0.03), Fault("429-retry-after", 0.02), Fault("reset", 0.01)],
    )
    async with Simulator(config) as sim:
        snapshots = sorted(sim.snapshots.values(), key=lambda s: (s["created_at"], s["id"]))
        bad_rows = write_jobs(jobs_path, snapshots, args.rows)
        print(f"demo: simulator at {sim.url}; {args.rows} jobs (+{bad_rows} deliberately bad rows) "
              f"in {jobs_path}", file=sys.stderr)
        settings = load_settings({
            "endpoint": sim.url, "project_id": PROJECT, "token": DEMO_TOKEN, "rate": args.rate,
            "concurrency": 32, "backoff_base": 0.05, "throttled_backoff": 0.2,
        })
        result = await run_job(settings, JobSpec(InputSpec(str(jobs_path)), str(report_path),
                                                 overwrite=True))
        applied = _check(report_path, sim.snapshots)
    counts = result.summary.counts
    print(
        f"\ndemo: {result.summary.rows} rows in {result.summary.elapsed:.1f} s: "
        f"{counts[Outcome.APPLIED]} applied, {counts[Outcome.REJECTED]} rejected, "
        f"{counts[Outcome.FAILED]} failed; {result.summary.requests} requests "
        f"({result.summary.retries} retries after injected faults, "
        f"{result.summary.achieved_rate:.0f}/s, at most {result.summary.busiest_second} in any one "
        f"second, under a limit of {args.rate:g}/s)\n"
        f"demo: the simulator confirms {applied} of {counts[Outcome.APPLIED]} applied rows "
        f"carry their new name\n"
        f"demo: report: {os.path.abspath(report_path)} (exit code of this job: {result.exit_code})",
        file=sys.stderr,
    )
    expected = counts[Outcome.APPLIED] == args.rows and applied == args.rows
    expected = expected and counts[Outcome.REJECTED] == bad_rows - 1 and counts[Outcome.FAILED] == 1
    return exitcodes.OK if expected else exitcodes.PROBLEMS


def _check(report_path: Path, snapshots: dict[str, dict[str, Any]]) -> int:
    """Applied rows whose snapshot, on the server, carries the requested name."""
    with report_path.open(encoding="utf-8", newline="") as f:
        return sum(
            1 for row in csv.DictReader(f)
            if row["outcome"] == Outcome.APPLIED and snapshots[row["snapshot_id"]]["name"] == row["name"]
        )


def main(args: argparse.Namespace) -> int:
    if args.write_only:
        return write_only(args)
    configure("warning" if sys.stdout.isatty() else "info")
    return asyncio.run(_demo(args))
