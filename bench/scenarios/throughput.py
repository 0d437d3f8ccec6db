"""1. Overhead and 2. Peers: the same jobs to the same fast target, in the same run.

The target is bench/static_target.py, not the simulator: the simulator serves about 6-7k PUT/s
on one core, about what the clients below reach, so it would measure itself. Client on one core,
target on the other. Every contender is a whole process, timed from its start to its exit
(reading the CSV and, for snaprelabel, the report and a JSON log event per job, included).
The contenders run in turn within each repeat, so they share the machine's load alike.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from .. import common
from ..common import (
    BENCH,
    OUT,
    PEER_PY,
    PEER_VENV,
    PROJECT,
    PY,
    Measured,
    Target,
    measure,
    median,
    snaprelabel,
    synthetic_ids,
    write_jobs,
)
from ..report import Section, table

LEAN = {"PYTHONPATH": str(BENCH / "shadow")}  # uvloop and orjson hidden


def _contenders(jobs: Path, sdk_jobs: Path, url: str) -> dict[str, tuple[list[str], dict, Path]]:
    peer = [str(PEER_PY), str(BENCH / "peers")]
    return {
        "bare aiohttp loop (asyncio)": ([PY, str(BENCH / "bare_loop.py"), str(jobs), url], {}, jobs),
        "bare aiohttp loop (uvloop)": (
            [PY, str(BENCH / "bare_loop.py"), str(jobs), url, "--uvloop"], {}, jobs),
        "snaprelabel (lean install)": (snaprelabel(jobs, url, "--rate", "0"), LEAN, jobs),
        **({"snaprelabel before this work (lean)": (
            snaprelabel(jobs, url, "--rate", "0", "--concurrency", "64"), LEAN, jobs)}
           if common.BEFORE else {}),
        "snaprelabel[fast] (uvloop, orjson)": (snaprelabel(jobs, url, "--rate", "0"), {}, jobs),
        "snaprelabel[fast] --no-fsync": (
            snaprelabel(jobs, url, "--rate", "0", "--no-fsync"), {}, jobs),
        "huaweicloudsdkevs, 32 threads": (
            [peer[0], f"{peer[1]}/huawei_evs.py", str(sdk_jobs), url, "--threads", "32"], {},
            sdk_jobs),
        "openstacksdk, sequential": (
            [peer[0], f"{peer[1]}/openstack_sdk.py", str(sdk_jobs), url], {}, sdk_jobs),
        "openstacksdk, 32 threads": (
            [peer[0], f"{peer[1]}/openstack_sdk.py", str(sdk_jobs), url, "--threads", "32"], {},
            sdk_jobs),
    }


def _rows(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f) - 1


def _cli_loop(url: str, jobs: list[tuple[str, str]]) -> tuple[float, int]:
    """`openstack volume snapshot set --name NAME ID`, one process per row, as a shell loop
    runs it: seconds per row, and how many exited 0."""
    config = OUT / "clouds.yaml"
    config.write_text(
        "clouds:\n  bench:\n    auth_type: none\n    auth:\n      endpoint: " + url + "\n"
        f"    block_storage_endpoint_override: {url}/v3/{PROJECT}\n"
        '    volume_api_version: "3"\n')
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(config), "OS_CLOUD": "bench"}
    started, ok = time.monotonic(), 0
    for snapshot_id, name in jobs:
        done = subprocess.run([str(PEER_VENV / "bin" / "openstack"), "volume", "snapshot", "set",
                               "--name", name, snapshot_id], env=env, capture_output=True)
        ok += done.returncode == 0
    return (time.monotonic() - started) / len(jobs), ok


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def run(quick: bool) -> Section:
    n, n_sdk, n_cli, repeats = (10_000, 2_000, 5, 2) if quick else (50_000, 10_000, 20, 3)
    jobs = write_jobs(OUT / f"jobs-{n}.csv", synthetic_ids(n))
    sdk_jobs = write_jobs(OUT / f"jobs-{n_sdk}.csv", synthetic_ids(n_sdk))
    runs: dict[str, list[Measured]] = {}
    rows: dict[str, int] = {}
    problems: list[str] = []
    with Target("static") as target:
        contenders = _contenders(jobs, sdk_jobs, target.url)
        for _ in range(repeats):
            for name, (cmd, env, their_jobs) in contenders.items():
                before = target.control("/_stats")["puts"]
                done = measure(cmd, env=env, stdout_path=OUT / "throughput.out",
                               cwd=common.BEFORE if "before" in name else None)
                sent = target.control("/_stats")["puts"] - before
                rows[name] = _rows(their_jobs)
                runs.setdefault(name, [])
                if done.rc != 0 or sent != rows[name]:
                    problems.append(f"{name}: exit {done.rc}, {sent} PUTs for {rows[name]} rows: "
                                    f"{done.stderr[-300:]}")
                else:
                    runs[name].append(done)
        sample = [(sid, f"cli-{i}") for i, sid in enumerate(synthetic_ids(n_cli))]
        cli_seconds, cli_ok = _cli_loop(target.url, sample)
        if cli_ok != n_cli:
            problems.append(f"openstack CLI: {n_cli - cli_ok} of {n_cli} calls failed")

    runs = {name: ms for name, ms in runs.items() if ms}  # a contender that never worked: above
    rate = {name: median([rows[name] / m.wall_s for m in ms]) for name, ms in runs.items()}
    cpu = {name: median([m.cpu_s / rows[name] * 1000 for m in ms]) for name, ms in runs.items()}
    load = {name: median([m.load for m in ms]) for name, ms in runs.items()}
    rate["openstack CLI loop (extrapolated)"] = 1 / cli_seconds
    bare = rate["bare aiohttp loop (asyncio)"]
    sdks = {k: v for k, v in rate.items() if "sdk" in k.lower() or "CLI" in k}
    best_sdk = max(sdks, key=sdks.get)
    fast = rate["snaprelabel[fast] (uvloop, orjson)"]
    lines = []
    for name in rate:
        jobs_done = rows.get(name, n_cli)
        lines.append([
            name, jobs_done, f"{rate[name]:,.0f}",
            f"{cpu[name]:.3f}" if name in cpu else "–",
            f"{rate[name] / bare:.2f}", f"{fast / rate[name]:.1f}×",
            f"{load.get(name, float('nan')):.2f}",
            _duration(n / rate[name]),
        ])
    body = table(["contender", "jobs", "jobs/s (median)", "CPU s / 1,000 jobs",
                  "÷ bare asyncio", "snaprelabel[fast] is", "load", f"{n:,} jobs take"], lines)
    lean = rate["snaprelabel (lean install)"]
    like = rate["snaprelabel[fast] (uvloop, orjson)"] / rate["bare aiohttp loop (uvloop)"]
    body += (
        f"\n\nOverhead ratios (snaprelabel ÷ bare loop, same run): lean install ÷ bare asyncio "
        f"**{lean / bare:.2f}**; [fast] ÷ bare asyncio **{fast / bare:.2f}**; [fast] ÷ bare "
        f"uvloop (like for like) **{like:.2f}**.\n\nFastest peer: {best_sdk}, "
        f"{sdks[best_sdk]:,.0f} jobs/s; snaprelabel[fast] is **{fast / sdks[best_sdk]:.1f}×** it, "
        f"the lean install {lean / sdks[best_sdk]:.1f}×. The SDKs ran the first {n_sdk:,} jobs "
        f"(their rate is flat after the first second), the CLI loop {n_cli} "
        f"({cli_seconds:.2f} s a call, extrapolated to {n:,})."
    )
    if problems:
        body += "\n\nProblems:\n" + "\n".join(f"- {p}" for p in problems)
    met = lean / bare >= 0.7 and fast / bare >= 0.7 and fast / sdks[best_sdk] >= 5 and not problems
    return Section(
        "1-2. Overhead and peers",
        f"{n:,} jobs, no rate limit, the static target (median of {repeats} runs, each "
        f"contender in turn). {__doc__.split(chr(10), 2)[2].strip()}",
        body,
        verdict=(met, f"overhead {lean / bare:.2f} (lean) and {fast / bare:.2f} ([fast]) of the "
                      f"bare loop (target ≥ 0.7); {fast / sdks[best_sdk]:.1f}× the fastest SDK "
                      "set-up (target ≥ 5×)"),
        figures={"rate": rate, "cpu_per_1000": cpu, "overhead_lean": lean / bare,
                 "overhead_fast": fast / bare, "vs_best_sdk": fast / sdks[best_sdk]},
    )
