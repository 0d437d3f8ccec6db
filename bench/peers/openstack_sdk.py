"""openstacksdk, as its docs show it: one Connection, `block_storage.update_snapshot(id,
name=...)` per row, sequential or from a thread pool. No Keystone here: `auth_type: none` and
the block-storage endpoint overridden to the target (Cinder's v3 path family).

    python bench/peers/openstack_sdk.py JOBS.csv ENDPOINT [--threads 0|N] [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from concurrent.futures import ThreadPoolExecutor

import openstack


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("jobs")
    parser.add_argument("endpoint")
    parser.add_argument("--threads", type=int, default=0, help="0: one request after another")
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    with open(args.jobs, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))[: args.limit]
    project = rows[0]["project_id"]
    conn = openstack.connect(
        auth_type="none", auth={"endpoint": args.endpoint},
        block_storage_endpoint_override=f"{args.endpoint}/v3/{project}",
        block_storage_api_version="3", load_yaml_config=False, load_envvars=False,
    )
    if args.threads:  # requests' default pool keeps 10 connections: one per thread instead
        adapter = conn.session.session.adapters["http://"]
        adapter.init_poolmanager(args.threads, args.threads)

    def update(row: dict) -> bool:
        snapshot = conn.block_storage.update_snapshot(row["snapshot_id"], name=row["name"])
        return snapshot.name == row["name"]

    started = time.monotonic()
    if args.threads:
        with ThreadPoolExecutor(args.threads) as pool:
            ok = sum(pool.map(update, rows))
    else:
        ok = sum(map(update, rows))
    print(json.dumps({"jobs": len(rows), "ok": ok, "elapsed_s": time.monotonic() - started}))


if __name__ == "__main__":
    main()
