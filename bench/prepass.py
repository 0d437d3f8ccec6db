"""What the confirmation's dry pre-pass costs, and how fast each inventory format is read.

    .venv/bin/python bench/prepass.py [ROWS]

For ROWS jobs (default 100,000) in CSV, a JSON array and an .xlsx workbook, times one read +
validation pass: what the pre-pass adds before the first request (the run reads it again).

Recorded on the 2-core development machine (shared with other work), 100,000 rows:
    csv   100,000 rows (7.5 MB): pre-pass 2.30 s, 43,433 rows/s
    json  100,000 rows (15.1 MB): pre-pass 1.56 s, 64,200 rows/s
    xlsx  100,000 rows (2.4 MB): pre-pass 10.19 s, 9,811 rows/s
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path

from openpyxl import Workbook

from worker.confirm import preview
from worker.settings import load_settings
from worker.sources import InputSpec
from worker.wiring import open_input, rules_from

PROJECT = "0123456789abcdef0123456789abcdef"


def write_inputs(folder: Path, rows: int) -> dict[str, Path]:
    ids = [str(uuid.UUID(int=i + 1, version=4)) for i in range(rows)]
    header = ["ID", "Name", "Description", "New Name"]
    records = [[sid, f"snap-{i:06d}", "daily backup", f"prod-{i:06d}"] for i, sid in enumerate(ids)]
    paths = {"csv": folder / "jobs.csv", "json": folder / "jobs.json", "xlsx": folder / "jobs.xlsx"}
    with paths["csv"].open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows(records)
    paths["json"].write_text(json.dumps([dict(zip(header, r, strict=True)) for r in records], indent=2))
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(header)
    for record in records:
        sheet.append(record)
    book.save(paths["xlsx"])
    return paths


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    settings = load_settings({"project_id": PROJECT, "endpoint": "http://127.0.0.1:9", "rate": 5})
    with tempfile.TemporaryDirectory() as folder:
        for fmt, path in write_inputs(Path(folder), rows).items():
            started = time.perf_counter()
            spec = InputSpec(str(path))
            result = preview(spec, partial(open_input, spec, settings), rules_from(settings))
            seconds = time.perf_counter() - started
            assert result is not None and result.valid == rows
            print(f"{fmt:5} {rows:,} rows ({path.stat().st_size / 1e6:.1f} MB): pre-pass "
                  f"{seconds:.2f} s, {rows / seconds:,.0f} rows/s")


if __name__ == "__main__":
    main()
