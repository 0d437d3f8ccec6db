"""6. Memory: a generated CSV (streamed to disk, never in the repository), run with `--dry-run`
and against the fast static target with no rate limit. Peak RSS of the process (wait4's
ru_maxrss), at two row counts: it should not grow with the rows, but for the duplicate check's
8-byte digest of each row (in a table kept at most half full: 16-32 bytes a row)."""

from __future__ import annotations

from ..common import OUT, Target, measure, snaprelabel, synthetic_ids, write_jobs
from ..report import Section, table

LIMIT_MB = 100
# The one thing that must grow with the rows: the duplicate check keeps a 64-bit digest of each
# (project, snapshot) in a hash table kept at most half full, 16-32 bytes a row (worker/jobs.py).
PER_ROW_BYTES = 32


def run(quick: bool) -> Section:
    small, large = (20_000, 200_000) if quick else (100_000, 1_000_000)
    rows, peaks = [], {}
    files = {n: write_jobs(OUT / f"memory-{n}.csv", synthetic_ids(n)) for n in (small, large)}
    with Target("static") as target:
        for mode in ("--dry-run", "static target"):
            for n, jobs in files.items():
                url = None if mode == "--dry-run" else target.url
                done = measure(snaprelabel(jobs, url, "--rate", "0"),
                               stdout_path=OUT / "memory.log")
                assert done.rc == 0, done.stderr
                peaks[mode, n] = done.max_rss_mb
                rows.append([mode, f"{n:,}", f"{done.max_rss_mb:.1f}", f"{done.wall_s:.1f}",
                             f"{n / done.wall_s:,.0f}", f"{done.load:.2f}"])
    worst = max(peaks.values())
    growth = max(peaks[m, large] - peaks[m, small] for m in ("--dry-run", "static target"))
    per_row = growth * 1024 * 1024 / (large - small)
    return Section(
        "6. Memory",
        __doc__.strip(),
        table(["mode", "rows", "peak RSS MB", "wall s", "rows/s", "load"], rows),
        verdict=(worst <= LIMIT_MB and per_row <= PER_ROW_BYTES,
                 f"peak {worst:.1f} MB (target ≤ {LIMIT_MB} MB); {large:,} rows take at most "
                 f"{growth:+.1f} MB more than {small:,}: {per_row:.0f} bytes a row, the "
                 f"duplicate check's (≤ {PER_ROW_BYTES})"),
    )
