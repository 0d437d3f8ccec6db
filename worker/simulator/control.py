"""The /_sim/ control API: inspect and steer a simulator running in another process.

No auth, no faults, no rate limit, not recorded: it is the test harness's side door.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .config import SimulatorConfig, check_rate, check_retry_after
from .quota import QuotaChange

if TYPE_CHECKING:
    from .server import Simulator


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass"),
        content_type="application/json",
    )


def _error(status: int, message: str) -> web.Response:
    return _json({"error": {"code": status, "message": message}}, status)


# An endpoint: the request and its parsed JSON body (None without one) to the answer.
Endpoint = Callable[[web.BaseRequest, object], web.Response]


class Control:
    def __init__(self, sim: Simulator):
        self.sim = sim
        self.routes: dict[tuple[str, str], Endpoint] = {
            ("GET", "/_sim/health"): self.health,
            ("GET", "/_sim/snapshots"): self.snapshots,
            ("GET", "/_sim/requests"): self.requests,
            ("GET", "/_sim/stats"): self.stats,
            ("POST", "/_sim/faults"): self.faults,
            ("POST", "/_sim/rate-limit"): self.rate_limit,
            ("POST", "/_sim/quota"): self.quota,
            ("POST", "/_sim/always-fail"): self.always_fail,
            ("POST", "/_sim/reset-records"): self.reset_records,
        }

    async def handle(self, request: web.BaseRequest) -> web.Response:
        fn = self.routes.get((request.method, request.path))
        if fn is None:
            return _error(404, f"no control endpoint {request.method} {request.path}")
        body: object = None
        if request.method == "POST":
            raw = await request.read()
            try:
                body = json.loads(raw) if raw.strip() else None
            except ValueError:
                return _error(400, "body is not JSON")
        try:
            return fn(request, body)
        except (ValueError, TypeError, KeyError) as exc:
            return _error(400, str(exc))

    def health(self, request: web.BaseRequest, body: object) -> web.Response:
        sim = self.sim
        project = sim.config.project_id
        return _json({"ok": True, "url": sim.url, "project_id": project, "snapshots": len(sim.snapshots)})

    def snapshots(self, request: web.BaseRequest, body: object) -> web.Response:
        return _json({"snapshots": list(self.sim.snapshots.values())})

    def requests(self, request: web.BaseRequest, body: object) -> web.Response:
        since = int(request.query.get("since", "0"))
        if since < 0:
            raise ValueError("since must not be negative")
        records = self.sim.requests[since:]
        return _json({"requests": [r.to_dict() for r in records], "next": since + len(records)})

    def stats(self, request: web.BaseRequest, body: object) -> web.Response:
        return _json(self.sim.stats())

    def faults(self, request: web.BaseRequest, body: object) -> web.Response:
        items = body.get("faults") if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise ValueError('send a JSON list of {"kind": ..., "fraction": ...}')
        self.sim.set_faults(items)
        return _json({"faults": [f.to_dict() for f in self.sim.picker.faults]})

    def rate_limit(self, request: web.BaseRequest, body: object) -> web.Response:
        if not isinstance(body, dict) or "rate" not in body:
            raise ValueError('send {"rate": R or null, "retry_after": S or null (optional)}')
        rate = check_rate(body["rate"])
        if "retry_after" in body:
            self.sim.set_rate_limit(rate, retry_after=check_retry_after(body["retry_after"]))
        else:
            self.sim.set_rate_limit(rate)
        limiter = self.sim.limiter
        return _json({"rate": rate, "retry_after": limiter.retry_after if limiter else None})

    def quota(self, request: web.BaseRequest, body: object) -> web.Response:
        """A new quota from now on: {"quota": "600/min"} or {"bucket": "10:20"} (or neither: none),
        "retry_after": bool, "limit_stated": bool, "changes": ["30s:50/s", ...] (from now)."""
        fields = {"quota", "bucket", "retry_after", "limit_stated", "changes"}
        if not isinstance(body, dict) or not set(body) <= fields:
            raise ValueError('send {"quota": "600/min" or "bucket": "RATE:BURST", "retry_after": false, '
                             '"limit_stated": true, "changes": ["30s:50/s"]} (all optional; {} clears)')
        changes = body.get("changes", [])
        if not isinstance(changes, list):
            raise ValueError('"changes" is a list like ["30s:50/s"]')
        flags = {name: body[name] for name in ("retry_after", "limit_stated") if name in body}
        for name, value in flags.items():
            if not isinstance(value, bool):
                raise ValueError(f'"{name}" is true or false, got {value!r}')
        # The same checks as the command line's, through the same configuration.
        cfg = SimulatorConfig(snapshots=0, quota=body.get("quota"), quota_bucket=body.get("bucket"),
                              quota_retry_after=flags.get("retry_after", False),
                              quota_limit_stated=flags.get("limit_stated", True),
                              quota_changes=tuple(QuotaChange.parse(str(c)) for c in changes))
        self.sim.set_quota(cfg.gate())
        gate = self.sim.quota
        return _json({"quota": gate.stats() if gate is not None else None})

    def always_fail(self, request: web.BaseRequest, body: object) -> web.Response:
        if not isinstance(body, dict):
            raise ValueError('send {"snapshot_id": "kind", ...} ({} clears)')
        self.sim.set_always_fail(body)
        return _json({"always_fail": self.sim.always_fail})

    def reset_records(self, request: web.BaseRequest, body: object) -> web.Response:
        self.sim.reset_records()
        return _json({"ok": True})
