"""Prometheus metrics: the HTTP request metrics, their middleware and the ``/metrics`` view.
The other metrics are defined by the app that owns them and served here with the rest:
serving's per-worker figures (``recommender/serving/metrics.py``), the API's ingest and
served-response counters (``recommender/metrics.py``), and training's figures, read from
the database at scrape time (``training/metrics.py``, in ``DATABASE_REGISTRY``).

Under gunicorn every worker is a process with its own counters. With
``PROMETHEUS_MULTIPROC_DIR`` set (``recsite/gunicorn.conf.py`` sets and empties it) each
process writes its values to files there and ``/metrics`` answered by any worker adds
them up, so a scrape sees the whole server. Without it (runserver, tests) the process's
own registry is served.
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
    Histogram,
    generate_latest,
    multiprocess,
)

# Defined (so listed by /metrics) from the first scrape, whether or not serving ran yet.
from recommender import metrics as api_metrics  # noqa: F401
from recommender.online import metrics as online_metrics  # noqa: F401
from recommender.serving import metrics as serving_metrics  # noqa: F401
from training.metrics import TrainingCollector

WORKER_HEADER = "X-Recsite-Worker"

# Figures read from the database when scraped: the same from every process, so never
# added up across the workers' files.
DATABASE_REGISTRY = CollectorRegistry(auto_describe=True)
DATABASE_REGISTRY.register(TrainingCollector())

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
        observe_request(response, _endpoint(request), request.method, started)
        return response


def observe_request(response: HttpResponse, endpoint: str, method: str, started: float) -> None:
    """Count and time one answered request (``started``: its ``time.perf_counter()``) and
    name the worker on the response."""
    LATENCY.labels(endpoint).observe(time.perf_counter() - started)
    REQUESTS.labels(endpoint, method, str(response.status_code)).inc()
    response[WORKER_HEADER] = str(os.getpid())


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics`` in the Prometheus text format (no authentication: restrict it at
    the proxy, like the admin)."""
    return HttpResponse(
        generate_latest(process_registry()) + generate_latest(DATABASE_REGISTRY),
        content_type=CONTENT_TYPE_LATEST,
    )


def process_registry() -> CollectorRegistry:
    """The per-process metrics: every worker's, added up, under gunicorn
    (``PROMETHEUS_MULTIPROC_DIR``); this process's own otherwise."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry
