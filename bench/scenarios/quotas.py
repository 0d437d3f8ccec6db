"""Quotas: `snaprelabel run` against the simulator enforcing a gateway quota (`--quota`, issue 13),
with `--rate auto` and, as the reference row, a fixed `--rate` at the true quota (per-second
equivalent; for a changing quota, the starting one). The simulator runs in its own process, so
its CPU is not the client's.

- held = rows applied per second from the job's first request to its last (on the server's
  clock, ramp included) ÷ the quota per second; for window quotas also the mean accepted per
  window ÷ N over the windows the job spans whole;
- throttled = 429s ÷ requests (the simulator's counters);
- adapt (changing quota) = seconds from the change until the first 1 s bin with ≥ 90% of the new
  quota accepted and ≤ 10% of it refused ("–": not within the job; a fixed rate does not
  adapt, and a figure on its row is where its job's tail of retries happened to fit);
- CPU/row = the client's user+sys CPU (wait4) ÷ rows applied; "less start-up": after taking
  off the CPU of a one-row job (median of 3), which is most of it on short jobs;
- auto ÷ fixed = the auto row's held ÷ its reference row's, measured minutes apart: when the
  client cannot reach the quota on this machine (1,000/s on a loaded core), the reference falls
  short as well, and the ratio still says what auto costs.

Per-window jobs are 3 windows of rows at the quota; a client slower than that is stopped
(SIGTERM) at twice the job's length at the quota ("stopped" column), its figures taken over what
it did. Those jobs run side by side (a few requests a second each), beside the per-second ones."""

from __future__ import annotations

import concurrent.futures
import json
import math
import os
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..common import CLIENT_CPU, CODE, OUT, Target, loadavg, pinned, simulator_ids, snaprelabel, write_jobs
from ..report import Section, table


@dataclass(frozen=True)
class Shape:
    name: str  # the row's label
    quota: str  # --quota
    per_second: float  # the quota's requests per second (the fixed reference's --rate)
    seconds: float  # the job's length at the quota
    retry_after: bool = False
    stated: bool = True
    change: tuple[float, str, float] | None = None  # (after s, new quota, its per second)

    @property
    def rows(self) -> int:
        if self.change is None:
            return int(self.per_second * self.seconds)
        after, _, new = self.change
        return int(self.per_second * after + new * (self.seconds - after))

    @property
    def window(self) -> int:
        from worker.simulator.quota import parse_window

        return parse_window(self.quota).window


def shapes(quick: bool) -> tuple[list[Shape], list[Shape]]:
    """(per-second and changing shapes, run one at a time; window shapes, run side by side)."""
    s = 6.0 if quick else 10.0
    fast = [Shape(f"{q:,}/s{', Retry-After' if ra else ''}", f"{q}/s", q, s, retry_after=ra)
            for q in (10, 100, 1000) for ra in (False, True)]
    # With Retry-After, finding the quota costs the ramp's pause of a second (and a 429 the
    # server's jitter lets through, another): a tenth of a 10-second job, a fortieth of a 40-second one.
    fast.append(Shape(f"100/s, Retry-After, {4 * s:g} s job", "100/s", 100, 4 * s, retry_after=True))
    half = 8.0 if quick else 10.0
    fast += [Shape("100/s halved to 50/s", "100/s", 100, 2 * half, change=(half, "50/s", 50)),
             Shape("50/s doubled to 100/s", "50/s", 50, 2 * half, change=(half, "100/s", 100))]
    short, long = (10, 30) if quick else (20, 60)
    windows = [Shape(f"{n}/{w}s{', limit stated' if stated else ''}", f"{n}/{w}s", n / w, 3 * w, stated=stated)
               for n, w in ((12 * short, short), (10 * long, long)) for stated in (True, False)]
    return fast, windows


@dataclass
class Run:
    shape: Shape
    mode: str  # "auto" or "fixed"
    rc: int
    wall: float
    cpu: float
    stopped: bool
    load: float
    stats: dict[str, Any]
    arrivals: list[tuple[float, int | None]]  # (server wall clock, status)


def _control(url: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method="POST" if data else "GET",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def _arrivals(url: str, slug: str) -> list[tuple[float, int | None]]:
    """Every request the simulator saw, (its wall clock, status); kept in bench/out/SLUG.arrivals.json
    too, so that a row that misses can be taken apart afterwards (which 429s: ramp, probe, trickle)."""
    out: list[tuple[float, int | None]] = []
    since = 0
    while True:
        page = _control(url, f"/_sim/requests?since={since}")
        out.extend((r["t_wall"], r["status"]) for r in page["requests"])
        if page["next"] == since:
            (OUT / f"{slug}.arrivals.json").write_text(json.dumps(out))
            return out
        since = page["next"]


def _client(cmd: Sequence[str], log_name: str, cap: float) -> tuple[int, float, float, bool]:
    """Run the client to its end, or SIGTERM it at `cap` s: (rc, wall, its CPU s, stopped)."""
    with open(OUT / f"{log_name}.log", "w") as out, open(OUT / f"{log_name}.stderr", "w") as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=CODE, env=dict(os.environ),
                                preexec_fn=pinned(CLIENT_CPU))
        stopped = threading.Event()

        def stop() -> None:
            stopped.set()
            proc.send_signal(signal.SIGTERM)
            threading.Timer(15, proc.kill).start()

        timer = threading.Timer(cap, stop)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.monotonic() - started, usage.ru_utime + usage.ru_stime, stopped.is_set()


def run_one(shape: Shape, mode: str) -> Run:
    slug = f"quotas-{shape.quota.replace('/', 'per')}-{mode}-{'ra' if shape.retry_after else 'nora'}" \
           f"-{'stated' if shape.stated else 'bare'}{'-change' if shape.change else ''}"
    flags = ["--quota", shape.quota, "--quota-retry-after", "on" if shape.retry_after else "off",
             "--quota-limit-stated", "on" if shape.stated else "off"]
    with Target("simulator", "--snapshots", str(shape.rows), *flags, record=True) as target:
        jobs = write_jobs(OUT / f"{slug}.csv", simulator_ids(shape.rows))
        rate = "auto" if mode == "auto" else f"{shape.per_second:g}"
        # The quota (and its change) is set again just before the client starts, so the change
        # falls due `after` seconds into the job rather than into the simulator's start-up.
        _control(target.url, "/_sim/quota", {
            "quota": shape.quota, "retry_after": shape.retry_after, "limit_stated": shape.stated,
            "changes": [f"{shape.change[0]:g}s:{shape.change[1]}"] if shape.change else []})
        # Long window jobs are cut short to keep the bench to minutes; per-second ones get room
        # for a client that cannot reach the quota on a loaded machine.
        cap = 2 * shape.seconds + 20 if shape.window > 1 else 3 * shape.seconds + 30
        rc, wall, cpu, stopped = _client(snaprelabel(jobs, target.url, "--rate", rate), slug, cap)
        stats = _control(target.url, "/_sim/stats")
        arrivals = _arrivals(target.url, slug)
    return Run(shape, mode, rc, wall, cpu, stopped, loadavg(), stats, arrivals)


@dataclass
class Figures:
    held: float
    per_window: float | None  # mean accepted per whole window ÷ N
    windows: int
    throttled: float
    adapt: float | None
    applied: int
    span: float


def _adapt(run: Run) -> float | None:
    applied = run.stats["quota"]["changes_applied"]
    if not applied or run.shape.change is None:
        return None
    at, new = applied[0]["at"], run.shape.change[2]
    bins: dict[int, list[int]] = {}
    for t, status in run.arrivals:
        if t >= at and status in (200, 429):
            bins.setdefault(math.floor(t - at), [0, 0])[0 if status == 200 else 1] += 1
    for second in sorted(bins):
        accepted, refused = bins[second]
        if accepted >= 0.9 * new and refused <= 0.1 * new:
            return float(second)
    return None


def figures(run: Run) -> Figures:
    shape, stats = run.shape, run.stats
    times = [t for t, _ in run.arrivals]
    start, end = (min(times), max(times)) if times else (0.0, 0.0)
    span = end - start
    applied = sum(stats["apply_counts"].values())
    applied_changes = stats["quota"]["changes_applied"]
    if shape.change is None or not applied_changes or span <= 0:
        quota_rate = shape.per_second
    else:  # the quota's mean over the span: the first rate until the change, the new one after
        after = min(span, max(0.0, applied_changes[0]["at"] - start))
        quota_rate = (shape.per_second * after + shape.change[2] * (span - after)) / span
    held = applied / span / quota_rate if span > 0 else float("nan")
    by_status = stats["by_status"]
    requests = sum(by_status.values())
    throttled = by_status.get("429", 0) / requests if requests else float("nan")
    per_window, whole = None, 0
    if shape.change is None and shape.window > 1 and times:
        w = shape.window
        counts = {i: 0 for i in range(math.floor(start / w) + 1, math.floor(end / w))}  # spanned whole
        for t, status in run.arrivals:
            if status == 200 and math.floor(t / w) in counts:
                counts[math.floor(t / w)] += 1
        whole = len(counts)
        per_window = sum(counts.values()) / whole / (shape.per_second * w) if whole else None
    return Figures(held, per_window, whole, throttled, _adapt(run), applied, span)


def _row(run: Run, reference: Run | None, base_cpu: float) -> list[str]:
    f = figures(run)
    ratio = "–"
    if reference is not None:
        ref = figures(reference)
        mine, theirs = (f.per_window, ref.per_window) if f.per_window and ref.per_window else (f.held, ref.held)
        ratio = f"{mine / theirs:.2f}" if theirs else "–"
    cpu = f"{run.cpu / f.applied * 1000:.2f}" if f.applied else "–"
    lean = f"{max(0.0, run.cpu - base_cpu) / f.applied * 1000:.2f}" if f.applied else "–"
    return [run.shape.name, run.mode, f"{f.applied:,}/{run.shape.rows:,}", f"{f.held:.1%}",
            f"{f.per_window:.1%} ({f.windows})" if f.per_window is not None else "–", ratio,
            f"{f.throttled:.2%}", "–" if f.adapt is None else f"{f.adapt:.0f} s", cpu, lean,
            f"{f.span:.1f}", "yes" if run.stopped else "", f"{run.load:.2f}"]


def _start_up_cpu() -> float:
    """The client's CPU for a one-row job: start-up and shutdown, whatever the job's length."""
    cpus = []
    with Target("simulator", "--snapshots", "1") as target:
        jobs = write_jobs(OUT / "quotas-one-row.csv", simulator_ids(1))
        for _ in range(3):
            cpus.append(_client(snaprelabel(jobs, target.url, "--rate", "10"), "quotas-one-row", 60)[2])
    return sorted(cpus)[1]


def run(quick: bool) -> Section:
    fast, windows = shapes(quick)
    runs: list[Run] = []
    # The window jobs (a few requests a second each, minutes long) run side by side in the
    # background while the per-second ones run one at a time.
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(windows) * 2) as pool:
        background = [pool.submit(run_one, shape, mode) for shape in windows for mode in ("auto", "fixed")]
        runs += [run_one(shape, mode) for shape in fast for mode in ("auto", "fixed")]
        runs += [future.result() for future in background]
    base_cpu = _start_up_cpu()
    fixed = {id(r.shape): r for r in runs if r.mode == "fixed"}
    header = ["quota", "--rate", "rows applied", "held", "held per whole window (windows)",
              "auto ÷ fixed", "throttled", "adapt", "CPU ms/row", "less start-up", "s", "stopped", "load"]
    body = table(header, [_row(r, fixed.get(id(r.shape)) if r.mode == "auto" else None, base_cpu)
                          for r in runs])
    body += f"\n\nA one-row job's CPU (start-up and shutdown): {base_cpu:.2f} s."
    failed = [f"{r.shape.name} {r.mode}: exit {r.rc}" for r in runs if r.rc != 0 and not r.stopped]
    if failed:
        body += "\n\nExit codes other than 0: " + "; ".join(failed) + "."
    return Section("quotas", __doc__.strip(), body, verdict=_verdict(runs))


def _verdict(runs: list[Run]) -> tuple[bool, str]:
    """Issue 13's targets, for the `--rate auto` rows."""
    met = True
    for r in runs:
        if r.mode != "auto":
            continue
        f = figures(r)
        if r.shape.change is not None:
            met = met and f.adapt is not None and f.adapt <= 5
        elif f.per_window is not None:
            met = met and f.per_window >= (0.95 if r.shape.stated else 0.85) and f.throttled <= 0.05
        else:
            met = met and f.held >= 0.9 and f.throttled <= 0.02
    return met, ("`--rate auto`: per-second quotas ≥ 90% held, ≤ 2% throttled; window quotas ≥ 85% "
                 "of N per whole window (≥ 95% with the limit stated), ≤ 5% throttled; back within "
                 "10% of a changed quota in ≤ 5 s")
