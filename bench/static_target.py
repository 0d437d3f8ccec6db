"""A minimal HTTP/1.1 target for throughput benchmarks, where the simulator (about 6-7k PUT/s on
one core) would be the bottleneck rather than the client being measured.

It answers every request at once on a keep-alive connection: a PUT or GET on
`.../snapshots/{id}` (or `cloudsnapshots`) with `{"snapshot": {...}}` echoing the id and the
sent name, a version document on a path without a snapshot id (the OpenStack SDK and CLI
discover versions first), an empty list on a listing path (`.../snapshots/detail`, which
snaprelabel GETs once to check its credentials). It checks nothing: correctness is the
simulator's job.

With --record it notes when each PUT arrived (time.monotonic() as its bytes are read, before
any other work: the least a server can add to the timing); `GET /_arrivals` returns them and
starts a new list. `GET /_stats` counts PUTs.

    python bench/static_target.py [--port 0] [--record]   # prints "listening on http://..."
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
import time
from array import array

_SNAPSHOT_PATH = re.compile(rb"/(?:cloud)?snapshots/([0-9a-f-]{36})")
_NAME = re.compile(rb'"name"\s*:\s*"((?:[^"\\]|\\.)*)"')
_VERSIONS = json.dumps({
    "versions": [{
        "id": "v3.0", "status": "CURRENT", "version": "3.70", "min_version": "3.0",
        "updated": "2023-03-01T00:00:00Z",
        "links": [{"rel": "self", "href": "http://127.0.0.1/v3/"}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.volume+json;version=3"}],
    }],
}).encode()


def _response(status: bytes, body: bytes) -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
            b"X-Openstack-Request-Id: req-static\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


def _snapshot(snapshot_id: bytes, name: bytes) -> bytes:
    return (b'{"snapshot":{"id":"' + snapshot_id + b'","name":"' + name
            + b'","description":null,"status":"available","size":10,"volume_id":"'
            + snapshot_id + b'","metadata":{},"created_at":"2024-01-01T00:00:00.000000",'
            b'"updated_at":"2024-01-01T00:00:00.000000"}}')


PUTS = [0]  # PUTs answered, shown by GET /_stats: proof that a peer really sent its requests
ARRIVALS: array | None = None  # with --record: arrival time of each PUT


class Http(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buffer = self.buffer + data
        out = []
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end]
            length = 0
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = lower.find(b"\r\n", at + 2)
                length = int(lower[at + 17: stop if stop >= 0 else None])
            if len(buffer) < end + 4 + length:
                break
            body = buffer[end + 4: end + 4 + length]
            buffer = buffer[end + 4 + length:]
            request_line = head[: head.find(b"\r\n")] if b"\r\n" in head else head
            if ARRIVALS is not None and request_line.startswith(b"PUT "):
                ARRIVALS.append(now)
            out.append(_answer(request_line, body))
        self.buffer = buffer
        if out:
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]  # a TCP server's: it can write


def _answer(request_line: bytes, body: bytes) -> bytes:
    parts = request_line.split(b" ")
    path = parts[1] if len(parts) > 1 else b"/"
    if path == b"/_stats":
        return _response(b"200 OK", json.dumps({"puts": PUTS[0]}).encode())
    if path == b"/_arrivals":
        global ARRIVALS
        times, ARRIVALS = ARRIVALS, array("d")
        return _response(b"200 OK", json.dumps({"arrivals": list(times or [])}).encode())
    match = _SNAPSHOT_PATH.search(path)
    PUTS[0] += parts[0] == b"PUT"
    if match is None and b"snapshots" in path:  # a listing (snaprelabel's credential check)
        return _response(b"200 OK", b'{"snapshots":[]}')
    if match is None:
        return _response(b"300 Multiple Choices" if path.rstrip(b"/").count(b"/") < 1
                         else b"200 OK", _VERSIONS)
    name = _NAME.search(body)
    return _response(b"200 OK", _snapshot(match.group(1), name.group(1) if name else b"snap"))


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://{host}:{bound}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", action="store_true", help="note each PUT's arrival time")
    args = parser.parse_args()
    if args.record:
        global ARRIVALS
        ARRIVALS = array("d")
    try:
        import uvloop  # the target must not be the bottleneck: the fastest loop there is

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
