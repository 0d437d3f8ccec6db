"""huaweicloudsdkevs, as its docs show it: one EvsClient, `update_snapshot(UpdateSnapshotRequest)`
per row, from a thread pool (32 by default). AK/SK are dummies: the benchmark target takes any
signature; the endpoint is overridden to the target.

    python bench/peers/huawei_evs.py JOBS.csv ENDPOINT [--threads 32] [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from concurrent.futures import ThreadPoolExecutor

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkevs.v2 import EvsClient, UpdateSnapshotOption, UpdateSnapshotRequest, UpdateSnapshotRequestBody


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("jobs")
    parser.add_argument("endpoint")
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    with open(args.jobs, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))[: args.limit]
    config = HttpConfig.get_default_config()
    config.ignore_ssl_verification = True
    config.retry_times = 0  # every request once, like the others
    credentials = BasicCredentials("BENCHDUMMYAK000000000", "bench-dummy-sk-not-a-secret",
                                   rows[0]["project_id"])
    client = (EvsClient.new_builder().with_http_config(config).with_credentials(credentials)
              .with_endpoints([args.endpoint]).build())

    def update(row: dict) -> bool:
        request = UpdateSnapshotRequest(
            snapshot_id=row["snapshot_id"],
            body=UpdateSnapshotRequestBody(snapshot=UpdateSnapshotOption(name=row["name"])))
        response = client.update_snapshot(request)
        return response.snapshot is not None and response.snapshot.name == row["name"]

    started = time.monotonic()
    with ThreadPoolExecutor(args.threads) as pool:
        ok = sum(pool.map(update, rows))
    print(json.dumps({"jobs": len(rows), "ok": ok, "elapsed_s": time.monotonic() - started}))


if __name__ == "__main__":
    main()
