"""The request handler: routing by path split, then rate limit, latency, faults, auth, the API.

One low-level aiohttp handler instead of a router keeps the lean hot path to a few string
operations and one dict lookup.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from . import faults as brk
from .identity import Identity
from .records import MALFORMED, RequestRecord, body_for_record, parse_body, redact_headers
from .responses import (
    bad_request,
    encode,
    fault_response,
    gateway_429,
    json_response,
    not_found,
)
from .store import FILTERS, MarkerNotFound, public_view
from .validation import InvalidBody, validate_update

if TYPE_CHECKING:
    from .server import Simulator

# (version segment, collection segment) -> family name, as in worker/api/paths.py
FAMILIES = {
    ("v2", "snapshots"): "v2",
    ("v2", "cloudsnapshots"): "evs",
    ("v3", "snapshots"): "cinder-v3",
}
MAX_LIMIT = 1000
_METHOD_NOT_ALLOWED = (405, encode({"error": {"code": 405, "message": "Method Not Allowed"}}))


def route(path: str) -> tuple[str, str, str | None] | None:
    """(family, project_id, target) for /{ver}/{project}/{collection}[/{target}], else None.
    target is None for the collection itself, "detail" for the listing, else a snapshot id."""
    parts = path.split("/")
    n = len(parts)
    if n < 4 or n > 5 or parts[0] or not parts[2]:
        return None
    family = FAMILIES.get((parts[1], parts[3]))
    if family is None:
        return None
    if n == 4:
        return family, parts[2], None
    return (family, parts[2], parts[4]) if parts[4] else None


REGION_PREFIX = "/regions/"


def _without_region(path: str) -> str:
    """`/regions/{name}/v3/...` is `/v3/...`: one simulator serves every region of a catalog
    (CatalogEntry urls such as {self}/regions/r1/v3/{project_id}); the request log keeps the
    whole path, so a test sees which region each request went to."""
    if not path.startswith(REGION_PREFIX):
        return path
    _, sep, rest = path[len(REGION_PREFIX):].partition("/")
    return "/" + rest if sep else path


def _int_param(query: Any, name: str, default: int, low: int, high: int | None) -> int:
    text = query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} param must be an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} param must be {bound}")
    return value


class Handler:
    def __init__(self, sim: Simulator):
        self.sim = sim

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_sim/"):
            return await self.sim.control.handle(request)
        if path.startswith("/v3/auth/"):  # the identity service: no faults, limit or API log
            return await self.sim.identity.handle(request)
        if self.sim.identity.serves_metadata(path):  # the same: another service, on this port
            return self.sim.identity.metadata(request)
        sim = self.sim
        now = time.monotonic()
        method = request.method
        hit = route(_without_region(path))
        family, project_id, target = hit if hit is not None else (None, None, None)
        snapshot_id = None if target is None or (target == "detail" and method != "PUT") else target
        raw = parsed = None
        if method == "PUT":
            raw = await request.read()
            parsed = parse_body(raw)
            if snapshot_id is not None:
                sim.put_counts[snapshot_id] += 1
        sim.method_counts[method] += 1
        rec = None
        if sim.record:
            rec = RequestRecord(
                now, time.time(), method, path, project_id, snapshot_id, family,
                body_for_record(raw, parsed), None, None,
                redact_headers(request.headers), request.query_string,
            )  # fmt: skip
            sim.requests.append(rec)
        resp, status, fault = await self._answer(request, rec, family, project_id, snapshot_id, raw, parsed)
        sim.status_counts[status] += 1
        if fault is not None:
            sim.fault_counts[fault] += 1
        if rec is not None:
            rec.status = status
        return resp

    async def _answer(
        self, request: web.BaseRequest, rec: RequestRecord | None, family: str | None, project_id: str | None,
        snapshot_id: str | None, raw: bytes | None, parsed: Any,
    ) -> tuple[web.Response, int | None, str | None]:
        """(response, status recorded, fault kind) for one API request."""
        sim = self.sim
        gate = sim.quota
        if gate is not None:
            # Counted at admission, not arrival: the body read may have yielded, and a sliding
            # window's deque must stay in time order.
            refusal = gate.check()
            if refusal is not None:
                if rec is not None:
                    rec.fault = "throttled"
                return gateway_429(refusal.limit, refusal.retry_after, refusal.time), 429, "throttled"
        if sim.latency_high > 0:
            await asyncio.sleep(sim.latency_rng.uniform(sim.latency_low, sim.latency_high))
        fault = None
        picker = sim.picker
        if picker.faults:
            fault = picker.draw()
        if snapshot_id is not None and sim.always_fail:
            fault = sim.always_fail.get(snapshot_id, fault)
        args = (request, family, project_id, snapshot_id, raw, parsed)
        if fault is None:
            status, body = self._serve(*args)
            return json_response(status, body), status, None
        if rec is not None:
            rec.fault = fault
        if fault == "hang":
            if await sim.wait_stopping(sim.config.hang_seconds):
                return brk.abort(request), None, fault  # shutting down: drop it
            status, body = self._serve(*args)
            return json_response(status, body), status, fault
        if fault == "reset":
            return brk.abort(request), None, fault
        if fault == "reset-after":
            self._serve(*args)
            return brk.abort(request), None, fault
        if fault == "truncate":
            status, body = self._serve(*args)
            return brk.truncate(request, status, body), status, fault
        resp = fault_response(fault)
        return resp, resp.status, fault

    def _serve(
        self, request: web.BaseRequest, family: str | None, project_id: str | None, snapshot_id: str | None,
        raw: bytes | None, parsed: Any,
    ) -> tuple[int, bytes]:
        """The service proper (auth, then the snapshot API): (status, JSON body)."""
        sim = self.sim
        identity: Identity = sim.identity
        if identity.required:
            refused = identity.refuse(request, raw, project_id)
            if refused is not None:
                return refused
        if family is None or project_id is None:  # route() gives both or neither
            return not_found()
        method = request.method
        if snapshot_id is None:
            return self._list(request, project_id) if method == "GET" else _METHOD_NOT_ALLOWED
        if method == "PUT":
            return self._update(project_id, snapshot_id, raw, parsed)
        if method == "GET":
            snap = sim.store.get(project_id, snapshot_id)
            if snap is None:
                return not_found(f"Snapshot {snapshot_id} could not be found.")
            return 200, encode({"snapshot": public_view(snap)})
        return _METHOD_NOT_ALLOWED

    def _update(self, project_id: str, snapshot_id: str, raw: bytes | None, parsed: Any) -> tuple[int, bytes]:
        if parsed is MALFORMED:
            return bad_request("Malformed request body")
        try:
            # Cinder validates the body before it looks the snapshot up: a bad body is 400 even
            # for an unknown id. An empty body is a body without "snapshot".
            changes = validate_update(parsed if raw else {})
        except InvalidBody as exc:
            return bad_request(str(exc))
        store = self.sim.store
        snap = store.get(project_id, snapshot_id)
        if snap is None:
            return not_found(f"Snapshot {snapshot_id} could not be found.")
        new = store.update(snap, changes)
        self.sim.apply_counts[snapshot_id] += 1
        return 200, encode({"snapshot": public_view(new)})

    def _list(self, request: web.BaseRequest, project_id: str) -> tuple[int, bytes]:
        query = request.query
        try:
            limit = _int_param(query, "limit", MAX_LIMIT, 1, MAX_LIMIT)
            offset = _int_param(query, "offset", 0, 0, None)
        except ValueError as exc:
            return bad_request(str(exc))
        marker = query.get("marker") or None
        filters = {k: query[k] for k in FILTERS if k in query}
        try:
            page, more = self.sim.store.list_page(
                project_id, limit=limit, marker=marker, offset=offset, filters=filters
            )
        except MarkerNotFound:
            return bad_request(f"Marker {marker} could not be found.")
        payload: dict[str, Any] = {"snapshots": [public_view(s) for s in page]}
        if more:
            # The next page starts after this page's last id; offset is already consumed.
            params = {"limit": limit, "marker": page[-1]["id"], **filters}
            href = f"{request.scheme}://{request.host}{request.path}?{urlencode(params)}"
            payload["snapshots_links"] = [{"href": href, "rel": "next"}]
        return 200, encode(payload)
