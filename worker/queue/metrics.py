"""Prometheus metrics of a long-running consumer (`--metrics-port`), on prometheus-client's own
HTTP server thread. Each consumer has its own registry: nothing global, nothing shared."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from ..api.client import Answer
from ..relabel import Updates
from ..retry import Counters
from .status import QueueStatus

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self, counters: Counters) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs = Counter("snaprelabel_jobs", "Jobs this consumer finished, by outcome "
                            "(redelivered, released, dead_letter: not final here)", ["outcome"],
                            registry=r)
        self.latency = Histogram("snaprelabel_request_duration_seconds",
                                 "API request latency, every attempt", buckets=LATENCY_BUCKETS,
                                 registry=r)
        self.responses = Counter("snaprelabel_responses", "API answers by HTTP status "
                                 "(none: no answer)", ["status"], registry=r)
        self.rate = Gauge("snaprelabel_request_rate", "Requests per second sent by this consumer, "
                          "over the last few seconds", registry=r)
        self.waiting = Gauge("snaprelabel_queue_waiting_jobs", "Jobs in the stream not yet "
                             "delivered to a consumer (queue lag)", registry=r)
        self.pending = Gauge("snaprelabel_queue_pending_jobs", "Jobs delivered and not yet "
                             "finished, all consumers", registry=r)
        self.oldest = Gauge("snaprelabel_queue_oldest_job_age_seconds", "Age of the oldest "
                            "unfinished job (queue lag in time)", registry=r)
        self.dead = Gauge("snaprelabel_queue_dead_letters", "Entries in the dead-letter stream",
                          registry=r)
        self.redis_up = Gauge("snaprelabel_redis_up", "1 while Redis answers", registry=r)
        self.shared_fallback = Gauge("snaprelabel_shared_limit_fallback", "1 while the shared "
                                     "rate limit runs on its local fallback", registry=r)
        r.register(_RelabelCounters(counters))
        self._counters = counters
        self._last = (time.monotonic(), counters.requests)

    def serve(self, port: int, host: str = "0.0.0.0") -> int:
        """Start the HTTP server thread; answers the bound port (port 0 picks a free one)."""
        server, _thread = start_http_server(port, host, registry=self.registry)
        return server.server_port

    def job(self, outcome: str) -> None:
        self.jobs.labels(outcome).inc()

    def answer(self, answer: Answer) -> None:
        self.latency.observe(answer.latency)
        self.responses.labels(str(answer.status) if answer.status is not None else "none").inc()

    def update(self, status: QueueStatus | None, redis_up: bool, fallback: bool) -> None:
        """Called every few seconds by the consumer."""
        now, requests = time.monotonic(), self._counters.requests
        then, before = self._last
        if now > then:
            self.rate.set((requests - before) / (now - then))
        self._last = (now, requests)
        self.redis_up.set(1 if redis_up else 0)
        self.shared_fallback.set(1 if fallback else 0)
        if status is not None:
            self.waiting.set(status.waiting)
            self.pending.set(status.pending)
            self.oldest.set(status.oldest_age_s or 0.0)
            self.dead.set(status.dead)


class _RelabelCounters(Collector):
    """The relabeler's own counters, read when scraped."""

    def __init__(self, counters: Counters) -> None:
        self._counters = counters

    def collect(self) -> Iterator[CounterMetricFamily]:
        c = self._counters
        yield CounterMetricFamily("snaprelabel_requests", "API requests sent", value=c.requests)
        yield CounterMetricFamily("snaprelabel_retries", "Requests that retried a job",
                                  value=c.retries)
        yield CounterMetricFamily("snaprelabel_throttled", "Throttled answers (429)",
                                  value=c.throttled)


class MeteredApi:
    """The snapshot API with every update timed and counted by status."""

    def __init__(self, api: Updates, metrics: Metrics) -> None:
        self._api = api
        self._metrics = metrics

    async def update(self, project_id: str, snapshot_id: str, body: dict[str, Any]) -> Answer:
        answer = await self._api.update(project_id, snapshot_id, body)
        self._metrics.answer(answer)
        return answer
