"""`python -m bench`: run every benchmark of issue 6 and write bench/out/RESULTS.md.

bench/out/ is git-ignored: copy the file over the tracked bench/RESULTS.md (or pass --output) to
publish new figures.

    .venv/bin/python -m bench            # everything: about 25 minutes on a quiet 2-core machine
    .venv/bin/python -m bench --quick    # smaller and shorter: about 8 minutes
    .venv/bin/python -m bench --only fidelity,adaptive --output /tmp/r.md

Run it from the project's environment with the `fast` extra installed (`pip install -e
'.[dev,fast]'`): the lean install is measured by hiding uvloop and orjson (bench/shadow). The
peer SDKs and py-spy go into bench/.venv, created on first use from
bench/requirements-peers.txt; they are never the project's dependencies.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from . import common
from .common import BENCH, CLIENT_CPU, PEER_PY, PEER_VENV, ROOT, SERVER_CPU, loadavg

SCENARIOS = ("throughput", "fidelity", "limiter_cpu", "latency", "adaptive", "memory", "startup",
             "profile", "quotas", "quotas_queue", "cost")
NEED_PEERS = {"throughput", "profile"}  # the peer SDKs and py-spy of bench/.venv


def ensure_peers() -> None:
    if PEER_PY.exists():
        return
    print("bench: creating bench/.venv and installing the peer SDKs and py-spy into it "
          "(bench/requirements-peers.txt; never the project's own environment)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run([str(PEER_PY), "-m", "pip", "install", "-q", "-r",
                    str(BENCH / "requirements-peers.txt")], check=True)


def _versions() -> str:
    def version(python: str, *names: str) -> str:
        code = (f"from importlib import metadata as m\nfor n in {names!r}:\n    try: print(n, m.version(n))"
                "\n    except m.PackageNotFoundError: print(n, 'not installed')")
        return subprocess.run([python, "-c", code], capture_output=True, text=True).stdout

    ours = version(sys.executable, "aiohttp", "asyncio-throttle", "structlog", "pydantic",
                   "pydantic-settings", "uvloop", "orjson")
    peers = version(str(PEER_PY), "huaweicloudsdkevs", "huaweicloudsdkcore", "openstacksdk",
                    "python-openstackclient", "py-spy") if PEER_PY.exists() else ""
    return ", ".join(line for line in (ours + peers).split("\n") if line)


def _machine() -> str:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    pinning = (f"client pinned to CPU {CLIENT_CPU}, target to CPU {SERVER_CPU}"
               if CLIENT_CPU is not None else "one CPU: no pinning")
    return f"{cpu}, {os.cpu_count()} CPUs, {mem} GiB; {platform.platform()}; {pinning}"


def _commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
                          capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "worker"],
                           capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + (" (with uncommitted changes in worker/)" if dirty else "")


NOTES_HEADING = "## How the benchmark works"


def _stamped(section: str, stamp: str) -> str:
    heading, _, rest = section.partition("\n")
    return f"{heading}\n\n{stamp}\n{rest}"


def splice(text: str, sections: list[str]) -> str:
    """`text` with each section (## heading ...) in place of the one with the same heading, or
    before the appended notes when it is new."""
    for section in sections:
        heading = section.partition("\n")[0] + "\n"
        start = text.find(heading)
        if start < 0:
            at = text.find(NOTES_HEADING)
            at = len(text) if at < 0 else at
            text = text[:at] + section + "\n" + text[at:]
            continue
        end = text.find("\n## ", start + len(heading))
        text = text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")
    return text


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller, shorter runs")
    parser.add_argument("--only", help=f"comma-separated scenarios of: {', '.join(SCENARIOS)}")
    parser.add_argument("--before", metavar="DIR", type=Path,
                        help="a checkout of the code before this work, for before/after rows "
                             "(e.g. `git worktree add /tmp/base main`)")
    # Not the tracked bench/RESULTS.md: a run on a busy laptop must not replace the published figures.
    parser.add_argument("--output", type=Path, default=common.OUT / "RESULTS.md",
                        help="where the results go (default bench/out/RESULTS.md; the published "
                             "ones are bench/RESULTS.md); with --only, an existing file keeps its "
                             "other sections")
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if args.before:
        common.BEFORE = args.before.resolve()
    if NEED_PEERS & set(chosen):
        ensure_peers()
    common.OUT.mkdir(exist_ok=True)
    started, load_before = time.monotonic(), loadavg()
    sections = []
    for name in chosen:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        try:
            section = importlib.import_module(f"bench.scenarios.{name}").run(args.quick)
        except Exception:  # one broken scenario must not lose the others
            sections.append(f"## {name}\n\nFAILED:\n\n```\n{traceback.format_exc()}```\n")
            print(f"bench: {name} failed", file=sys.stderr)
            continue
        sections.append(section.markdown())
        if args.only:  # a few scenarios: their tables on the terminal as well
            print(sections[-1], flush=True)
        print(f"bench: {name} done in {time.monotonic() - t0:.0f} s"
              + (f": {'met' if section.verdict[0] else 'NOT met'}, {section.verdict[1]}"
                 if section.verdict else ""), file=sys.stderr, flush=True)
    took = time.monotonic() - started
    header = "\n".join([
        "# snaprelabel benchmarks",
        "",
        f"Generated by `python -m bench{' --quick' if args.quick else ''}"
        f"{' --only ' + args.only if args.only else ''}` (bench/__main__.py) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {took / 60:.1f} min; "
        f"commit {_commit()}.",
        "",
        f"- Machine: {_machine()}.",
        f"- Python {platform.python_version()}; {_versions()}.",
        f"- Load average (1 min): {load_before:.2f} at the start, {loadavg():.2f} at the end. "
        "The machine may be shared: every figure has the load beside it, ratios are measured "
        "side by side in the same run, and repeated figures are medians.",
        "",
    ])
    notes = BENCH / "NOTES.md"
    if args.only and args.output.exists():
        # Some scenarios into published results: replace their sections, keep the others.
        stamp = (f"_Measured by `python -m bench{' --quick' if args.quick else ''} --only {args.only}` "
                 f"on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit {_commit()}; load {load_before:.2f} "
                 f"at the start, {loadavg():.2f} at the end._")
        text = splice(args.output.read_text(), [_stamped(s, stamp) for s in sections])
    else:
        text = header + "\n" + "\n".join(sections)
        if notes.exists():
            text += "\n" + notes.read_text()
    args.output.write_text(text)
    print(f"bench: wrote {args.output} ({took / 60:.1f} min)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
