"""Prometheus metrics for `GET /metrics`: requests, latency, batch sizes, the model served.

Each app has its own `CollectorRegistry`, so several apps in one process never share counts.
With `serve --workers N` the workers are separate processes: `serve` sets
`$PROMETHEUS_MULTIPROC_DIR` to a fresh directory before starting them, every worker writes its
values there (prometheus_client's multiprocess mode) and `/metrics`, whichever worker answers
it, reports the sum over all workers (gauges: the maximum).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from sessionrec.rundir import WEIGHTS_FILE

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client reads it when it is imported
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
OTHER_ROUTE = "other"  # the route label of paths the app does not serve (bounded labels)


def weights_id(run_dir: Path | None) -> str:
    """The first 12 hex digits of the weights file's sha256: which weights answer, even when a
    run directory is retrained in place ("" when the model has no weights file)."""
    path = Path(run_dir or ".") / WEIGHTS_FILE
    if run_dir is None or not path.is_file():
        return ""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


class ServiceMetrics:
    """The service's metrics, and the text `GET /metrics` answers."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = MULTIPROC_ENV in os.environ
        r = self.registry
        self.requests = Counter(
            "sessionrec_requests", "HTTP requests answered, by route and status code.",
            ["route", "status"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "sessionrec_request_seconds", "Time from a request's arrival to its last byte sent.",
            ["route"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch = Histogram(
            "sessionrec_batch_sessions", "Sessions per forward pass of the dynamic batcher.",
            buckets=BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.ingested = Counter(
            "sessionrec_ingested_sessions", "Sessions taken by POST /sessions.", registry=r
        )
        self.reloads = Counter(
            "sessionrec_reloads", "POST /admin/reload requests, by result (ok or failed).",
            ["result"], registry=r,
        )  # fmt: skip
        self.generation = Gauge(
            "sessionrec_model_generation", "Models swapped in by hot reloads since the start.",
            registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.model = Gauge(
            "sessionrec_model_info", "1 for the model served now (0: served before a reload).",
            ["model", "run_dir", "weights"], registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self._model_labels: tuple[str, ...] | None = None
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def serving(self, name: str, run_dir: Path | None, generation: int) -> None:
        """Report the model served now (after the start or a reload)."""
        labels = (name, str(run_dir or ""), weights_id(run_dir))
        if self._model_labels is not None and self._model_labels != labels:
            self.model.labels(*self._model_labels).set(0)
        self.model.labels(*labels).set(1)
        self._model_labels = labels
        self.generation.set(generation)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request (children cached: two dict look-ups per request)."""
        children = self._children.get((route, status))
        if children is None:
            children = self.requests.labels(route, str(status)), self.latency.labels(route)
            self._children[route, status] = children
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> bytes:
        """The Prometheus text format: this registry, or every worker's values."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        everyone = CollectorRegistry()
        MultiProcessCollector(everyone)
        return generate_latest(everyone)


class RequestMetrics:
    """ASGI middleware: count every HTTP answer by route and status and time it, including
    answers other middleware gives (413, 401) and unhandled errors (counted as 500)."""

    def __init__(self, app: Any, metrics: ServiceMetrics, routes: frozenset[str]) -> None:
        self.app, self.metrics, self.routes = app, metrics, routes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def sent(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            path = scope["path"]
            route = path if path in self.routes else OTHER_ROUTE
            self.metrics.observe_request(route, status, time.perf_counter() - started)
