"""Prometheus metrics of the recommendations API: ``GET /metrics`` (text format 0.0.4).

Per request (a pure-ASGI middleware around everything, the fast path included):

* ``trasos_api_requests_total{route, method, status}``: ``route`` is the route template
  (``/v1/users/{user_id}/recommendations``), never the raw path, so ids do not multiply the
  series; a path no route knows is ``route="unmatched"``.
* ``trasos_api_request_duration_seconds{route}``: a histogram, from the first byte of the request
  reaching the app to the last byte of the answer leaving it (uvicorn's parsing excluded).

Per scrape, from the model store (:class:`ModelCollector`; nothing is counted per request):
the served version as ``trasos_api_model_info{model_version, candidate, kind} 1``, whether one is
loaded, its trained/generated/loaded times, rows and load time, and the failed loads of
published versions (``trasos_api_model_load_failures_total``, ``trasos_api_model_load_failing``)
and swaps. Plus the client library's process and Python metrics (CPU, RSS, open files, GC).

Several uvicorn workers (``serve --workers N``, N > 1): ``serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder, so the request counters and histograms are
summed over the workers (prometheus_client's multiprocess mode); the model metrics are those of
the worker that answered the scrape, and process metrics are left out (they would describe one
worker only). docs/serving.md ("Metrics") has the scrape configuration.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector
from starlette.routing import BaseRoute

from include.serving.loader import ModelStore

METRICS_PATH = "/metrics"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "trasos_api"
UNMATCHED = "unmatched"
#: Scope key where a middleware that answers by itself (the fast path) names the route template.
ROUTE_KEY = "trasos.route"
#: Methods counted by name; any other (a client may send anything) is ``method="other"``.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Seconds. The fast path answers in tens of microseconds, FastAPI in about a millisecond; the
#: goal is p99 < 10 ms, so the buckets are dense below that and sparse above.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class ModelCollector(Collector):
    """The model store's state, read at scrape time."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store

    def collect(self) -> Iterable[Metric]:
        store = self.store
        snap = store.current
        loaded = GaugeMetricFamily(
            f"{PREFIX}_model_loaded", "1 when a model version is loaded and served, else 0"
        )
        loaded.add_metric([], 1 if snap is not None else 0)
        yield loaded
        failing = GaugeMetricFamily(
            f"{PREFIX}_model_load_failing",
            "1 while the version CURRENT names cannot be loaded (the previous one, if any, "
            "still serves), else 0",
        )
        failing.add_metric([], 1 if store.load_failing else 0)
        yield failing
        failures = CounterMetricFamily(
            f"{PREFIX}_model_load_failures",
            "Failed loads of published versions (missing files, broken contract, unreadable "
            "CURRENT) since the process started",
        )
        failures.add_metric([], store.load_failures)
        yield failures
        swaps = CounterMetricFamily(
            f"{PREFIX}_model_swaps",
            "Model versions loaded and swapped in since the process started",
        )
        swaps.add_metric([], store.swaps)
        yield swaps
        if snap is None:
            return
        info = GaugeMetricFamily(
            f"{PREFIX}_model_info",
            "The model version being served (always 1; the version is in the labels)",
            labels=["model_version", "candidate", "kind"],
        )
        info.add_metric([snap.model_version, snap.candidate, snap.kind], 1)
        yield info
        for name, value, text in (
            ("trained", snap.trained_at, "When the served model was trained"),
            ("generated", snap.generated_at, "When its recommendations were computed"),
            ("loaded", snap.loaded_at, "When this process loaded it"),
        ):
            family = GaugeMetricFamily(
                f"{PREFIX}_model_{name}_timestamp_seconds", f"{text} (Unix time)"
            )
            family.add_metric([], _timestamp(value))
            yield family
        rows = GaugeMetricFamily(f"{PREFIX}_model_rows", "Published rows held in memory")
        rows.add_metric([], snap.rows)
        yield rows
        seconds = GaugeMetricFamily(
            f"{PREFIX}_model_load_seconds", "How long loading the served version took"
        )
        seconds.add_metric([], snap.load_seconds)
        yield seconds


class RequestMetrics:
    """The request counters and histogram, and the registry ``/metrics`` renders."""

    def __init__(self, store: ModelStore, routes: Sequence[BaseRoute]) -> None:
        self.routes = routes  # the app's route list (routes added later are seen too)
        multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry()
        # multiprocess: the values live in files of every worker and are collected from there
        own = None if multiprocess else self.registry
        self.requests = Counter(
            f"{PREFIX}_requests",
            "HTTP requests answered, by route template, method and status code",
            ["route", "method", "status"],
            registry=own,
        )
        self.latency = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "Time from the request reaching the app to the answer leaving it, by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        if multiprocess:
            from prometheus_client.multiprocess import MultiProcessCollector

            MultiProcessCollector(self.registry)
        else:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self.registry.register(ModelCollector(store))
        # label children, cached: labels() takes a lock and builds a tuple each call
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[str, Any] = {}

    def route_of(self, scope: dict[str, Any]) -> str:
        route = scope.get("route")  # set by FastAPI's router when it handled the request
        if route is not None:
            return route.path
        named = scope.get(ROUTE_KEY)  # set by the fast path (include.serving.app.FastLists)
        if named is not None:
            return named
        # No route matched (404), or a wrong method (405): the routes' path regexes alone
        # (route.matches() builds a child scope and converts parameters: ~10x the time)
        path = scope["path"]
        by_path = UNMATCHED
        for candidate in self.routes:
            regex = getattr(candidate, "path_regex", None)
            if regex is None or not regex.match(path):
                continue
            methods = getattr(candidate, "methods", None)
            if not methods or scope["method"] in methods:
                return candidate.path  # type: ignore[attr-defined]
            if by_path is UNMATCHED:
                by_path = candidate.path  # type: ignore[attr-defined]  # a 405: the path's
        return by_path

    def observe(self, scope: dict[str, Any], status: int, seconds: float) -> None:
        route = self.route_of(scope)
        method = scope["method"]
        if method not in METHODS:  # bounded label values, whatever the client sends
            method = "other"
        key = (route, method, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(route, method, str(status))
        counter.inc()
        histogram = self._histograms.get(route)
        if histogram is None:
            histogram = self._histograms[route] = self.latency.labels(route)
        histogram.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI: counts and times every HTTP request (outermost, so the fast path too).

    An exception escaping the app counts as a 500: Starlette's error middleware, outside this
    one, answers it with the 500 problem document.
    """

    def __init__(self, app: Any, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_and_note_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            self.metrics.observe(scope, status, time.perf_counter() - start)


def install(
    app: FastAPI,
    store: ModelStore,
    *,
    dependencies: Sequence[Any],
    responses: dict[int | str, dict[str, Any]],
) -> RequestMetrics:
    """Add the middleware (call after every other middleware, so it wraps them all) and
    ``GET /metrics``, protected by ``dependencies`` (the API key rule of the other endpoints)."""
    metrics = RequestMetrics(store, app.router.routes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.state.metrics = metrics
    render: Callable[[], bytes] = metrics.render

    @app.get(
        METRICS_PATH,
        operation_id="getMetrics",
        summary="Prometheus metrics: requests, latency, served model version, load failures",
        tags=["ops"],
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "Prometheus text exposition format 0.0.4.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **responses,
        },
        dependencies=list(dependencies),
    )
    async def metrics_endpoint() -> Response:
        """The service's metrics in Prometheus text format (see docs/serving.md, "Metrics").
        Needs the API key like every data endpoint."""
        return Response(render(), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    return metrics
