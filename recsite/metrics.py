"""Prometheus metrics: the definitions, the request middleware and the ``/metrics`` view.

Under gunicorn every worker is a process with its own counters. With
``PROMETHEUS_MULTIPROC_DIR`` set (``recsite/gunicorn.conf.py`` sets and empties it) each
process writes its values to files there and ``/metrics`` answered by any worker adds
them up, so a scrape sees the whole server. Without it (runserver, tests) the process's
own registry is served.

Per-worker gauges (the loaded version, the model age, whether the last load failed) use
the ``liveall`` mode: one series per live worker, labelled ``pid``, so a version that one
worker failed to load is visible.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

WORKER_HEADER = "X-Recsite-Worker"

REQUESTS = Counter(
    "recsite_http_requests_total",
    "HTTP requests answered, by endpoint (URL name), method and status.",
    ["endpoint", "method", "status"],
)
LATENCY = Histogram(
    "recsite_http_request_duration_seconds",
    "Time from the request entering Django to the response leaving it, by endpoint.",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
MODEL_VERSION = Gauge(
    "recsite_model_loaded_version",
    "The model version this worker serves (0: none loaded).",
    ["recommender"],
    multiprocess_mode="liveall",
)
MODEL_AGE = Gauge(
    "recsite_model_age_seconds",
    "Seconds since the served model version was created (trained).",
    ["recommender"],
    multiprocess_mode="liveall",
)
MODEL_LAST_LOAD_FAILED = Gauge(
    "recsite_model_last_load_failed",
    "1 when this worker's last attempt to load the active version failed.",
    ["recommender"],
    multiprocess_mode="liveall",
)
MODEL_SWAPS = Counter(
    "recsite_model_swaps_total",
    "Model versions swapped in (a first load counts too).",
    ["recommender"],
)
MODEL_LOAD_FAILURES = Counter(
    "recsite_model_load_failures_total",
    "Attempts to load a model version that failed to load or verify (never swapped in).",
    ["recommender"],
)


def _endpoint(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return match.url_name or match.view_name or "unnamed"


class MetricsMiddleware:
    """Counts and times every request by URL name (bounded label values), and names the
    worker process in a response header so clients and tests can tell workers apart."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        endpoint = _endpoint(request)
        LATENCY.labels(endpoint).observe(time.perf_counter() - started)
        REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
        response[WORKER_HEADER] = str(os.getpid())
        return response


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics`` in the Prometheus text format (no authentication: restrict it at
    the proxy, like the admin)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
