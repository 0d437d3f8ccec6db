"""8. Cost per row (issue 13).

The CPU a row costs at an API's pace, and the unpaced throughput against the bare loop, each
contender in turn in the same run (static target, client and target on their own cores).

- **Paced**: `--rate 200`, fsync on (the default) and off. "CPU ms / row" is the whole process
  (start-up included) over the rows; "sending only" subtracts a `--dry-run` of the same file by
  the same code in the same repeat (start-up, reading, validating, the report). The yardstick
  is bench/bare_loop.py `--rate 200`: aiohttp and nothing else, each sender sleeping to its own
  slot, on the same target, so "÷ bare paced" is what snaprelabel adds to the least a paced
  aiohttp request costs on this machine.
- **Unpaced**: `--rate 0` against bench/bare_loop.py (asyncio and uvloop), jobs/s.
- "before" rows run the code of `--before DIR` (bench/NOTES.md) with the same interpreter.
- "lean" hides uvloop and orjson (bench/shadow); the others have them installed.
"""

from __future__ import annotations

from pathlib import Path

from .. import common
from ..common import BENCH, OUT, PY, Measured, Target, measure, median, snaprelabel, synthetic_ids, write_jobs
from ..report import Section, table

LEAN = {"PYTHONPATH": str(BENCH / "shadow")}  # uvloop and orjson hidden
RATE = 200


def _codes() -> dict[str, Path | None]:
    """The code versions compared: this checkout, and the one before this work if given."""
    return {"": None, **({"before: ": common.BEFORE} if common.BEFORE else {})}


def _paced(jobs: Path, url: str) -> dict[str, tuple[list[str], dict[str, str], Path | None, str]]:
    """name -> (command, env, code dir, dry-run key whose CPU is subtracted)."""
    out: dict[str, tuple[list[str], dict[str, str], Path | None, str]] = {
        "bare aiohttp loop, paced (asyncio)": (
            [PY, str(BENCH / "bare_loop.py"), str(jobs), url, "--rate", str(RATE), "--concurrency",
             "32"], {}, None, ""),
        "bare aiohttp loop, paced (uvloop)": (
            [PY, str(BENCH / "bare_loop.py"), str(jobs), url, "--rate", str(RATE), "--concurrency",
             "32", "--uvloop"], {}, None, ""),
    }
    for prefix, code in _codes().items():
        out[f"{prefix}snaprelabel[fast], fsync on"] = (
            snaprelabel(jobs, url, "--rate", str(RATE)), {}, code, f"{prefix}dry")
        out[f"{prefix}snaprelabel[fast] --no-fsync"] = (
            snaprelabel(jobs, url, "--rate", str(RATE), "--no-fsync"), {}, code, f"{prefix}dry")
        out[f"{prefix}snaprelabel (lean), fsync on"] = (
            snaprelabel(jobs, url, "--rate", str(RATE)), LEAN, code, f"{prefix}dry lean")
        out[f"{prefix}dry"] = (snaprelabel(jobs, None), {}, code, "")
        out[f"{prefix}dry lean"] = (snaprelabel(jobs, None), LEAN, code, "")
    return out


def _unpaced(jobs: Path, url: str) -> dict[str, tuple[list[str], dict[str, str], Path | None]]:
    out: dict[str, tuple[list[str], dict[str, str], Path | None]] = {
        "bare aiohttp loop (asyncio)": ([PY, str(BENCH / "bare_loop.py"), str(jobs), url], {}, None),
        "bare aiohttp loop (uvloop)": (
            [PY, str(BENCH / "bare_loop.py"), str(jobs), url, "--uvloop"], {}, None),
    }
    for prefix, code in _codes().items():
        out[f"{prefix}snaprelabel (lean)"] = (snaprelabel(jobs, url, "--rate", "0"), LEAN, code)
        out[f"{prefix}snaprelabel[fast]"] = (snaprelabel(jobs, url, "--rate", "0"), {}, code)
    return out


def run(quick: bool) -> Section:
    n_paced, n_unpaced, repeats = (2_000, 10_000, 2) if quick else (3_000, 30_000, 3)
    paced_jobs = write_jobs(OUT / f"cost-{n_paced}.csv", synthetic_ids(n_paced))
    unpaced_jobs = write_jobs(OUT / f"cost-{n_unpaced}.csv", synthetic_ids(n_unpaced))
    paced: dict[str, list[Measured]] = {}
    unpaced: dict[str, list[Measured]] = {}
    subtract: dict[str, list[float]] = {}  # paced name -> CPU of its dry run, per repeat
    problems: list[str] = []
    with Target("static") as target:
        paced_cmds = _paced(paced_jobs, target.url)
        unpaced_cmds = _unpaced(unpaced_jobs, target.url)
        for _ in range(repeats):
            this: dict[str, Measured] = {}
            for name, (cmd, env, code, _dry) in paced_cmds.items():
                done = measure(cmd, env=env, stdout_path=OUT / "cost.out", cwd=code)
                if done.rc != 0:
                    problems.append(f"{name}: exit {done.rc}: {done.stderr[-300:]}")
                    continue
                this[name] = done
                paced.setdefault(name, []).append(done)
            for name, (_cmd, _env, _code, dry) in paced_cmds.items():
                if dry and name in this and dry in this:
                    subtract.setdefault(name, []).append(this[dry].cpu_s)
            for name, (cmd, env, code) in unpaced_cmds.items():
                done = measure(cmd, env=env, stdout_path=OUT / "cost.out", cwd=code)
                if done.rc != 0:
                    problems.append(f"{name}: exit {done.rc}: {done.stderr[-300:]}")
                    continue
                unpaced.setdefault(name, []).append(done)

    def per_row(ms: list[Measured], n: int) -> float:
        return median([m.cpu_s / n * 1000 for m in ms])

    bare = per_row(paced["bare aiohttp loop, paced (asyncio)"], n_paced)
    figures: dict[str, float] = {}
    rows = []
    for name, ms in paced.items():
        if name.endswith("dry") or name.endswith("dry lean"):
            continue
        cpu = per_row(ms, n_paced)
        figures[f"paced {name}"] = cpu
        sending = "–"
        if name in subtract:
            pairs = [m.cpu_s - d for m, d in zip(ms, subtract[name], strict=False)]
            sending = f"{median(pairs) / n_paced * 1000:.3f}"
            figures[f"sending {name}"] = median(pairs) / n_paced * 1000
        rate = median([n_paced / m.wall_s for m in ms])
        rows.append([name, f"{cpu:.3f}", sending, f"{cpu / bare:.2f}", f"{rate:.0f}",
                     f"{median([m.load for m in ms]):.2f}"])
    body = (f"**Paced**, {n_paced:,} rows at `--rate {RATE}` (median of {repeats}):\n\n"
            + table(["contender", "CPU ms / row", "sending only, ms / row", "÷ bare paced",
                     "rows/s (wall, start-up included)", "load"], rows))

    urows = []
    for name, ms in unpaced.items():
        rate = median([n_unpaced / m.wall_s for m in ms])
        # Pairwise: each repeat's contender over that repeat's bare loop (same load).
        ratio = median([b.wall_s / m.wall_s for m, b in
                        zip(ms, unpaced["bare aiohttp loop (asyncio)"], strict=False)])
        figures[f"unpaced {name}"] = ratio
        cpu = per_row(ms, n_unpaced)
        urows.append([name, f"{rate:,.0f}", f"{cpu:.3f}", f"{ratio:.2f}",
                      f"{per_row(unpaced['bare aiohttp loop (asyncio)'], n_unpaced) / cpu:.2f}",
                      f"{median([m.load for m in ms]):.2f}"])
    body += (f"\n\n**Unpaced**, {n_unpaced:,} rows, `--rate 0` (median of {repeats}; the ratio is "
             "taken repeat by repeat):\n\n"
             + table(["contender", "jobs/s", "CPU ms / row", "÷ bare asyncio (same repeat)",
                      "bare asyncio's CPU ÷ its CPU (the ratio on a free core)", "load"], urows))
    if problems:
        body += "\n\nProblems:\n" + "\n".join(f"- {p}" for p in problems)
    fsync_on = figures.get("paced snaprelabel[fast], fsync on", float("nan"))
    lean = figures.get("unpaced snaprelabel (lean)", float("nan"))
    fast = figures.get("unpaced snaprelabel[fast]", float("nan"))
    met = fsync_on <= 0.3 and min(lean, fast) >= 0.8 and not problems
    return Section(
        "8. Cost per row",
        __doc__.split("\n", 1)[1].strip(),
        body,
        verdict=(met, f"{fsync_on:.3f} ms of CPU a row at --rate {RATE} with fsync (target ≤ 0.3; "
                      f"the bare paced loop: {bare:.3f}); unpaced {lean:.2f} (lean) and "
                      f"{fast:.2f} ([fast]) of the bare asyncio loop (target ≥ 0.8)"),
        figures=figures,
    )
