"""The yardstick for overhead: the least code that sends the same PUTs with aiohttp.

Reads the jobs CSV (snapshot_id, project_id, name), sends `PUT /v2/{project}/snapshots/{id}` with
the same JSON body as snaprelabel, `concurrency` requests in flight, reads every answer's
JSON, and nothing else: no validation, no report, no logs, no retries.

    python bench/bare_loop.py JOBS.csv ENDPOINT [--concurrency 64] [--uvloop] [--rate N]

`--rate N` paces the requests the least costly way there is (each sender sleeps until its own
slot, 1/N apart): the yardstick for what a paced request costs (bench/scenarios/cost.py).

Prints one JSON line: {"jobs": N, "ok": N, "elapsed_s": ...}.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import time

import aiohttp


async def run(jobs_path: str, endpoint: str, concurrency: int, throttle: int | None,
              rate: float | None = None) -> dict:
    with open(jobs_path, encoding="utf-8", newline="") as f:
        jobs = [(row["snapshot_id"], row["project_id"], row["name"]) for row in csv.DictReader(f)]
    queue = iter(jobs)
    throttler = None
    if throttle:  # asyncio-throttle alone, for the rate-fidelity contrast
        from asyncio_throttle import Throttler

        throttler = Throttler(rate_limit=throttle, period=1.0)
    ok = 0
    loop = asyncio.get_running_loop()
    next_slot = [loop.time()]
    connector = aiohttp.TCPConnector(limit=concurrency)
    started = time.monotonic()
    async with aiohttp.ClientSession(connector=connector) as session:

        async def sender() -> None:
            nonlocal ok
            for snapshot_id, project_id, name in queue:
                body = json.dumps({"snapshot": {"name": name}}, ensure_ascii=False).encode()
                url = f"{endpoint}/v2/{project_id}/snapshots/{snapshot_id}"
                if throttler is not None:
                    await throttler.acquire()
                if rate:
                    slot = next_slot[0] = max(next_slot[0], loop.time()) + 1 / rate
                    await asyncio.sleep(slot - 1 / rate - loop.time())
                async with session.put(url, data=body,
                                       headers={"Content-Type": "application/json"}) as resp:
                    payload = json.loads(await resp.read())
                    ok += resp.status == 200 and "snapshot" in payload

        await asyncio.gather(*(sender() for _ in range(concurrency)))
    return {"jobs": len(jobs), "ok": ok, "elapsed_s": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("jobs")
    parser.add_argument("endpoint")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--throttle", type=int, help="requests per second, by asyncio-throttle")
    parser.add_argument("--rate", type=float, help="requests per second, each sender sleeping to its slot")
    args = parser.parse_args()
    factory = None
    if args.uvloop:
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        print(json.dumps(runner.run(run(args.jobs, args.endpoint.rstrip("/"), args.concurrency,
                                   args.throttle, args.rate))))


if __name__ == "__main__":
    main()
