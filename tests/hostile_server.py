"""A snapshot API and identity service that misbehave on purpose, for tests.

Raw asyncio rather than aiohttp.web, so that an answer can be anything at all: a lying
Content-Length, 10,000 headers, a body that trickles or never ends. It runs on its own thread
and event loop (127.0.0.1, a free port), so a test can point the CLI in a child process at it as
well as a job run in the test's own loop. Every request is recorded, whatever the answer.

Each kind of request has a behaviour, chosen by name when the server is made:

    HostileServer(put="other-id")                 # every PUT gets an answer about another snapshot
    HostileServer(put="redirect-307", redirect_to=other.url)

Kinds: `put` (PUT .../snapshots/{id}), `listing` (GET .../snapshots/detail), `token`
(POST .../v3/auth/tokens) and `catalog` (GET .../v3/auth/catalog). BEHAVIOURS lists the names.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import struct
import threading
import uuid
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit

OTHER_ID = "99999999-9999-4999-8999-999999999999"
ISSUED_TOKEN = "hostile-issued-token-5be1"
QUERY_SECRET = "QUERYSECRET"  # put in every redirect's query: a report must never show it
CHUNK = b"x" * 65536
HUGE = 400 * 1024 * 1024


@dataclass
class Request:
    method: str
    target: str  # path and query, as sent
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


Behaviour = Callable[["HostileServer", Request, asyncio.StreamWriter], Awaitable[None]]
BEHAVIOURS: dict[str, Behaviour] = {}


def behaviour(*names: str) -> Callable[[Behaviour], Behaviour]:
    def register(fn: Behaviour) -> Behaviour:
        for name in names:
            BEHAVIOURS[name] = fn
        return fn
    return register


@dataclass
class HostileServer:
    put: str = "ok"
    listing: str = "ok"
    token: str = "ok"
    catalog: str = "ok"
    redirect_to: str | None = None  # the other origin redirects point at
    tls: ssl.SSLContext | None = None
    huge_size: int = HUGE  # bytes of a huge body
    trickle_interval: float = 1.0  # seconds between two bytes of a trickling body
    retry_after: str = "1"  # the Retry-After value of "throttle-once"
    dated: int = 0  # answers "absurd-dates" gave
    requests: list[Request] = field(default_factory=list)
    url: str = ""
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.Server | None = None
    _seen: set[str] = field(default_factory=set)

    def __enter__(self) -> HostileServer:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls))
            port = self._server.sockets[0].getsockname()[1]
            self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._thread is not None

        async def shut() -> None:
            assert self._server is not None
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def puts(self) -> list[Request]:
        return [r for r in self.requests if r.method == "PUT"]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
            if request is None:
                return
            self.requests.append(request)
            await BEHAVIOURS[self.behaviour_for(request)](self, request, writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client hung up: for a huge or trickling answer, that is the point
        except asyncio.CancelledError:
            pass  # the server is shutting down
        finally:
            writer.close()

    def behaviour_for(self, request: Request) -> str:
        path = request.path
        if path.endswith("/auth/tokens"):
            return self.token if self.token != "ok" else "token-ok"
        if path.endswith("/auth/catalog"):
            return self.catalog if self.catalog != "ok" else "catalog-ok"
        if path.endswith("/detail"):
            return self.listing if self.listing != "ok" else "listing-ok"
        return self.put


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, target, headers, body)


def head(status: int, headers: dict[str, str] | list[tuple[str, str]] = (), *,
         length: int | None = None) -> bytes:
    """Status line and headers; Content-Length when `length` is given, and always Connection:
    close (one request per connection keeps the server simple)."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers)
    if length is not None:
        items.append(("Content-Length", str(length)))
    items.append(("Connection", "close"))
    lines = [f"HTTP/1.1 {status} Hostile"] + [f"{k}: {v}" for k, v in items]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def send(writer: asyncio.StreamWriter, status: int, body: Any = b"",
         headers: dict[str, str] | None = None) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    kind = {"Content-Type": "application/json"} if raw[:1] in (b"{", b"[") else {}
    writer.write(head(status, {**kind, **(headers or {})}, length=len(raw)) + raw)


def snapshot_id(request: Request) -> str:
    return request.path.rstrip("/").rsplit("/", 1)[-1]


def sent_snapshot(request: Request) -> dict[str, Any]:
    doc = request.json()
    snap = doc.get("snapshot") if isinstance(doc, dict) else None
    return snap if isinstance(snap, dict) else {}


def echo(request: Request, **changes: Any) -> dict[str, Any]:
    """The snapshot view a real server answers a PUT with: the id, the new values, the rest."""
    view = {"id": snapshot_id(request), "status": "available", "size": 1, "metadata": {},
            "volume_id": "5aa119a8-d25b-45a7-8d1b-88e127885635",
            "created_at": "2024-01-01T00:00:00.000000", "description": None, "name": None,
            **sent_snapshot(request)}
    view.update(changes)
    return {"snapshot": view}


# -- well-behaved answers -------------------------------------------------------------------------

@behaviour("ok")
async def _ok(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    send(writer, 200, echo(request))


@behaviour("absurd-dates")
async def _absurd_dates(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """A 429 and then a 200 per snapshot, each Date header a different kind of nonsense: the
    second they name is a hint to --rate auto's count, never trusted to be one."""
    dates = ["Fri, 04 Dec 99999 19:03:07 GMT", "x" * 4000, "Fri, 32 Dec 2026 25:61:61 GMT", "-1", "nan"]
    server.dated += 1
    date = dates[server.dated % len(dates)]
    if server.dated % 2:
        send(writer, 429, {"error_code": "APIGW.0308", "error_msg": "throttled"},
             {"Date": date, "Retry-After": "0"})
    else:
        send(writer, 200, echo(request), {"Date": date})


@behaviour("listing-ok")
async def _listing(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    send(writer, 200, {"snapshots": []})


@behaviour("token-ok")
async def _token(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    now = datetime.now(UTC)
    token = {"issued_at": now.isoformat(), "expires_at": (now + timedelta(hours=1)).isoformat(),
             "project": {"id": "0123456789abcdef0123456789abcdef"}, "catalog": []}
    send(writer, 201, {"token": token}, {"X-Subject-Token": ISSUED_TOKEN})


@behaviour("token-expired")
async def _token_expired(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """A token that expires the moment it is issued."""
    now = datetime.now(UTC).isoformat()
    token = {"issued_at": now, "expires_at": now, "project": {"id": "0123456789abcdef0123456789abcdef"}}
    send(writer, 201, {"token": token}, {"X-Subject-Token": ISSUED_TOKEN})


@behaviour("catalog-ok")
async def _catalog(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    send(writer, 200, {"catalog": []})


# -- redirects ----------------------------------------------------------------------------------

@behaviour("redirect-301", "redirect-302", "redirect-303", "redirect-307", "redirect-308")
async def _redirect(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    assert server.redirect_to, "a redirect needs redirect_to"
    status = int(server.behaviour_for(request).rsplit("-", 1)[1])
    location = f"{server.redirect_to}{request.path}?sig={QUERY_SECRET}"
    send(writer, status, b"<html>moved</html>", {"Location": location})


# -- 2xx answers that say something else than was asked -----------------------------------------

@behaviour("snapshot-string", "snapshot-list", "snapshot-number", "snapshot-empty")
async def _odd_snapshot(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    kind = server.behaviour_for(request).rsplit("-", 1)[1]
    value = {"string": "ok", "list": [echo(request)["snapshot"]], "number": 1, "empty": {}}[kind]
    send(writer, 200, {"snapshot": value})


@behaviour("other-id")
async def _other_id(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    send(writer, 200, echo(request, id=OTHER_ID))


@behaviour("other-name")
async def _other_name(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    send(writer, 200, echo(request, name="someone-else"))


@behaviour("other-description")
async def _other_description(server: HostileServer, request: Request,
                             writer: asyncio.StreamWriter) -> None:
    send(writer, 200, echo(request, description="another description"))


@behaviour("display-names")
async def _display_names(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """The old (v1) view: display_name and display_description instead of name and description."""
    sent = sent_snapshot(request)
    send(writer, 200, {"snapshot": {"id": snapshot_id(request), "display_name": sent.get("name"),
                                    "display_description": sent.get("description")}})


@behaviour("stripped")
async def _stripped(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """Cinder strips leading and trailing white space from a new name and description."""
    sent = sent_snapshot(request)
    send(writer, 200, echo(request, **{k: v.strip() for k, v in sent.items() if isinstance(v, str)}))


@behaviour("no-content")
async def _no_content(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    writer.write(head(204))


@behaviour("html")
async def _html(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    send(writer, 200, b"<html><body>Welcome to the captive portal</body></html>",
         {"Content-Type": "text/html"})


# -- answers too big or too slow to read whole ---------------------------------------------------

@behaviour("huge")
async def _huge(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """A 2xx whose body never seems to end: chunked, no Content-Length, never held in memory."""
    writer.write(head(200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}))
    writer.write(b"%x\r\n{\"snapshot\": \"\r\n" % len(b"{\"snapshot\": \""))
    chunk = b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n"
    for _ in range(server.huge_size // len(CHUNK)):
        writer.write(chunk)
        await writer.drain()
    writer.write(b"0\r\n\r\n")


@behaviour("huge-declared")
async def _huge_declared(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """The same, announced by its Content-Length."""
    writer.write(head(200, {"Content-Type": "application/json"}, length=server.huge_size))
    for _ in range(server.huge_size // len(CHUNK)):
        writer.write(CHUNK)
        await writer.drain()


@behaviour("huge-error")
async def _huge_error(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """A proxy's 503 error page that never ends."""
    writer.write(head(503, {"Content-Type": "text/html"}, length=server.huge_size))
    writer.write(b"<html><title>Service Unavailable</title>")
    for _ in range(server.huge_size // len(CHUNK)):
        writer.write(CHUNK)
        await writer.drain()


_BOMB: bytes | None = None


def gzip_bomb() -> bytes:
    """1 GiB of JSON text (a snapshot named with a billion spaces) in 1 MB of gzip. Each MiB of
    spaces is compressed once after a full flush, which leaves the compressor with no history,
    so its bytes can be repeated (compressing the whole GiB would take seconds)."""
    global _BOMB
    if _BOMB is None:
        block, prefix, suffix, blocks = b" " * (1 << 20), b'{"snapshot": {"name": "', b'"}}', 1024
        packer = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: the gzip frame is ours
        first = packer.compress(prefix) + packer.flush(zlib.Z_FULL_FLUSH)
        middle = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
        last = packer.compress(suffix) + packer.flush()
        crc = zlib.crc32(prefix)
        for _ in range(blocks):
            crc = zlib.crc32(block, crc)
        size = len(prefix) + blocks * len(block) + len(suffix)
        _BOMB = (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + first + middle * blocks + last
                 + struct.pack("<II", zlib.crc32(suffix, crc), size & 0xFFFFFFFF))
    return _BOMB


@behaviour("gzip-bomb")
async def _gzip_bomb(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    bomb = gzip_bomb()
    writer.write(head(200, {"Content-Type": "application/json", "Content-Encoding": "gzip"},
                      length=len(bomb)) + bomb)


@behaviour("trickle")
async def _trickle(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """A whole answer, one byte at a time: each byte comes well within any read timeout."""
    body = json.dumps(echo(request)).encode()
    writer.write(head(200, {"Content-Type": "application/json"}, length=len(body)))
    for i in range(len(body)):
        writer.write(body[i:i + 1])
        await writer.drain()
        await asyncio.sleep(server.trickle_interval)


# -- absurd headers ------------------------------------------------------------------------------

@behaviour("big-header")
async def _big_header(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    body = json.dumps(echo(request)).encode()
    writer.write(head(200, {"X-Padding": "p" * 100_000}, length=len(body)) + body)


@behaviour("many-headers")
async def _many_headers(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    body = json.dumps(echo(request)).encode()
    writer.write(head(200, [(f"X-H{i}", "v") for i in range(10_000)], length=len(body)) + body)


@behaviour("length-too-short")
async def _short_length(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """Content-Length says 10 bytes; the JSON that follows is longer."""
    body = json.dumps(echo(request)).encode()
    writer.write(head(200, {"Content-Type": "application/json"}, length=10) + body)


@behaviour("length-too-long")
async def _long_length(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """Content-Length promises more than comes before the connection closes."""
    body = json.dumps(echo(request)).encode()
    writer.write(head(200, {"Content-Type": "application/json"}, length=len(body) + 1000) + body)


@behaviour("throttle-once")
async def _throttle_once(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """429 with the server's Retry-After the first time a path is asked for, then the answer."""
    if request.path in server._seen:
        await _ok(server, request, writer)
        return
    server._seen.add(request.path)
    send(writer, 429, {"error_code": "APIGW.0308", "error_msg": "The throttling threshold has been "
                       "reached"}, {"Retry-After": server.retry_after})


# -- refusals that echo what they were sent ------------------------------------------------------

@behaviour("echo-401")
async def _echo_401(server: HostileServer, request: Request, writer: asyncio.StreamWriter) -> None:
    """401 whose message quotes the request back: its body and credential headers, as they came
    and in every encoding a server might use (JSON-escaped by the JSON answer itself,
    URL-encoded, base64 of user:password)."""
    quoted = [request.body.decode("utf-8", "replace")]
    doc = request.json()
    with contextlib.suppress(AttributeError, KeyError, TypeError):
        user = doc["auth"]["identity"]["password"]["user"]
        quoted += [user["password"], quote(user["password"], safe=""), quote_plus(user["password"]),
                   base64.b64encode(f"{user.get('name')}:{user['password']}".encode()).decode()]
    for name in ("x-auth-token", "x-security-token", "authorization"):
        value = request.headers.get(name)
        if value:
            quoted += [f"{name}={value}", quote(value, safe=""), quote_plus(value)]
    message = "The request you have made requires authentication: " + " | ".join(quoted)
    send(writer, 401, {"error": {"code": 401, "title": "Unauthorized", "message": message}})


def other_ids(count: int) -> list[str]:
    return [str(uuid.UUID(int=i + 1, version=4)) for i in range(count)]
