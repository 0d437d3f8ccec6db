"""The Simulator: its state, its run-time knobs and its lifecycle on an aiohttp low-level server."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from ..waits import set_within
from .app import Handler
from .config import FaultSpec, SimulatorConfig, check_fault_kind, check_rate, check_retry_after, to_faults
from .control import Control
from .faults import FaultPicker
from .identity import Identity
from .quota import Gate, SlidingWindow
from .records import RequestRecord
from .seeding import generate, load_csv
from .store import SnapshotStore

_KEEP: Any = object()
# Long enough for in-flight answers to finish; hanging ones are woken and dropped at stop.
SHUTDOWN_TIMEOUT = 1.0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class Simulator:
    def __init__(self, config: SimulatorConfig | None = None):
        cfg = config if config is not None else SimulatorConfig()
        self.config = cfg
        if cfg.seed_file is not None:
            rows = load_csv(cfg.seed_file, cfg.project_id, cfg.seed)
        else:
            rows = generate(cfg.snapshots, cfg.project_id, cfg.seed, cfg.autobk_fraction)
            for n, project in enumerate(cfg.projects, start=1):  # other projects: other snapshots
                rows += generate(cfg.snapshots, project, cfg.seed + n, cfg.autobk_fraction)
        self.store = SnapshotStore(rows)
        self.requests: list[RequestRecord] = []
        self.put_counts: Counter[str] = Counter()  # PUTs received per snapshot, whatever the answer
        self.apply_counts: Counter[str] = Counter()  # PUTs that changed state per snapshot
        self.status_counts: Counter[int | None] = Counter()  # None: connection dropped
        self.method_counts: Counter[str] = Counter()
        self.fault_counts: Counter[str] = Counter()
        self.record = cfg.record
        self.identity = Identity(cfg)
        self.picker = FaultPicker(cfg.seed, cfg.faults)
        self._retry_after = cfg.rate_limit_retry_after
        self.quota: Gate | None = cfg.gate()
        self.always_fail: dict[str, str] = dict(cfg.always_fail)
        self.latency_low = max(0.0, cfg.latency - cfg.latency_jitter)
        self.latency_high = cfg.latency + cfg.latency_jitter
        self.latency_rng = random.Random(f"latency:{cfg.seed}")
        self.control = Control(self)
        self.url: str | None = None
        self._runner: web.ServerRunner | None = None
        self._stopping: asyncio.Event | None = None

    @property
    def snapshots(self) -> dict[str, dict[str, Any]]:
        return self.store.data

    # -- run-time knobs (plain attribute swaps, so safe to call from another thread) --

    def set_faults(self, faults: Iterable[FaultSpec]) -> None:
        # Same RNG, new list: the draw sequence continues rather than restarting.
        self.picker.faults = tuple(to_faults(faults))

    def set_rate_limit(self, rate: int | None, retry_after: int | None = _KEEP) -> None:
        """The original limit: R requests in any sliding second (None: no quota at all)."""
        if retry_after is not _KEEP:
            self._retry_after = check_retry_after(retry_after)
        rate = check_rate(rate)
        cfg = self.config
        self.quota = Gate(SlidingWindow(rate, self._retry_after), retry_after=cfg.quota_retry_after,
                          limit_stated=cfg.quota_limit_stated) if rate else None

    def set_quota(self, gate: Gate | None) -> None:
        """A new quota from now on (its scheduled changes count from now), or none."""
        self.quota = gate

    @property
    def limiter(self) -> SlidingWindow | None:
        """The sliding-window limit of `--rate-limit`, if that is the quota (older callers)."""
        model = self.quota.model if self.quota is not None else None
        return model if isinstance(model, SlidingWindow) else None

    def set_always_fail(self, mapping: dict[str, str]) -> None:
        self.always_fail = {str(k): check_fault_kind(v) for k, v in mapping.items()}

    def reset_records(self) -> None:
        self.requests.clear()
        self.identity.token_requests.clear()
        if self.quota is not None:
            self.quota.reset_counts()
        for counter in (self.put_counts, self.apply_counts, self.status_counts, self.method_counts, self.fault_counts):
            counter.clear()

    def stats(self) -> dict[str, Any]:
        return {
            "requests": sum(self.method_counts.values()),
            "recorded": len(self.requests),
            "by_status": {("dropped" if k is None else str(k)): v for k, v in self.status_counts.items()},
            "by_method": dict(self.method_counts),
            "by_fault": dict(self.fault_counts),
            "put_counts": dict(self.put_counts),
            "apply_counts": dict(self.apply_counts),
            "snapshots": len(self.snapshots),
            "faults": [f.to_dict() for f in self.picker.faults],
            "rate_limit": self.limiter.rate if self.limiter else None,
            "quota": self.quota.stats() if self.quota is not None else None,
            "token_requests": len(self.identity.token_requests),
        }

    # -- lifecycle --

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        if self._runner is not None:
            raise RuntimeError("simulator already started")
        self._stopping = asyncio.Event()
        server = web.Server(Handler(self), access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        self.url = f"http://{_url_host(host)}:{bound_port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is None:
            return
        assert self._stopping is not None
        self._stopping.set()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def wait_stopping(self, timeout: float) -> bool:
        """Sleep `timeout` seconds; True (early) if the simulator is stopping."""
        assert self._stopping is not None
        return await set_within(self._stopping, timeout)

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
