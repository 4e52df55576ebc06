"""GET of the serving endpoints without Django's per-request handler machinery.

A recommendation request spent about a quarter of its Python CPU around the view: the
request signals, URL resolution through the whole URLconf, the middleware chain's
wrappers and the response conversion (docs/BENCHMARKS.md). This path answers a ``GET``
whose path matches one of the serving routes that Django tries first, so a match here is
the match Django would make, and does what the API handler does for it, through Django's
own objects:

- the route's own pattern (the URLconf's ``URLPattern``) parses the path;
- the API middlewares run their own request and response hooks, in the chain's order
  (``SecurityMiddleware``'s HTTPS redirect and headers, CORS, ``CommonMiddleware``), and
  the request is counted and timed as ``MetricsMiddleware`` does;
- the view is the serving view (``recommender/serving_views.py``), wrapped like every
  Django view so an unexpected error is the JSON 500 and is logged;
- ``response.close()`` (called by the server) sends ``request_finished``, which returns
  the database connection as after any request.

Every other request (other methods, paths, and any change of the middleware list that
this path does not know) goes to the API handler. tests/recsite/test_wsgi_serving.py
checks both give the same status, body and headers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from corsheaders.middleware import CorsMiddleware
from django.conf import settings
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpRequest, HttpResponse
from django.middleware.common import CommonMiddleware
from django.middleware.security import SecurityMiddleware
from django.urls import URLPattern, URLResolver, get_resolver

from recsite.metrics import observe_request

StartResponse = Callable[..., Any]
View = Callable[..., HttpResponse]

# The API chain this path reproduces, in order (recsite/settings.py, API_MIDDLEWARE).
HANDLED_MIDDLEWARE = [
    "recsite.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
]


def _not_called(request: HttpRequest) -> HttpResponse:
    raise AssertionError("the fast path calls the middlewares' hooks, not the chain")


class ServingRoute:
    """One serving URL pattern under its include's prefix."""

    def __init__(self, include: URLResolver, pattern: URLPattern) -> None:
        self.include = include
        self.pattern = pattern
        self.view: View = pattern.callback
        self.endpoint = pattern.name or "unnamed"

    def match(self, path_info: str) -> dict[str, Any] | None:
        outer = self.include.pattern.match(path_info[1:])
        if outer is None:
            return None
        inner = self.pattern.pattern.match(outer[0])
        return None if inner is None else inner[2]


def leading_serving_routes() -> list[ServingRoute]:
    """The serving routes Django tries before any other: the run of serving views at the
    start of the URLconf's first include. Empty when the URLconf starts otherwise."""
    patterns = get_resolver().url_patterns
    include = patterns[0] if patterns else None
    if not isinstance(include, URLResolver):
        return []
    routes = []
    for pattern in include.url_patterns:
        if not (isinstance(pattern, URLPattern) and getattr(pattern.callback, "serving", False)):
            break
        routes.append(ServingRoute(include, pattern))
    return routes


class ServingFastPath:
    """``match`` picks the requests this path answers; ``__call__`` answers one."""

    def __init__(self, routes: list[ServingRoute]) -> None:
        # Only for the middleware list it reproduces: anything else, the API handler.
        self.routes = routes if list(settings.API_MIDDLEWARE) == HANDLED_MIDDLEWARE else []
        self.security = SecurityMiddleware(_not_called)
        self.cors = CorsMiddleware(_not_called)
        self.common = CommonMiddleware(_not_called)
        # As in Django's chain, an exception raised inside a middleware layer becomes that
        # layer's response (CommonMiddleware refuses a disallowed user agent by raising).
        self._inner = convert_exception_to_response(self._common_and_view)

    def match(self, environ: dict[str, Any]) -> tuple[ServingRoute, dict[str, Any]] | None:
        if environ.get("REQUEST_METHOD") != "GET":
            return None
        path_info = environ.get("PATH_INFO", "")
        for route in self.routes:
            kwargs = route.match(path_info)
            if kwargs is not None:
                return route, kwargs
        return None

    def __call__(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        route: ServingRoute,
        kwargs: dict[str, Any],
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        request = WSGIRequest(environ)
        request.serving_match = (route, kwargs)
        response = self.security.process_request(request)
        if response is None:
            self.cors.check_preflight(request)  # a GET is never a preflight: marks CORS on
            response = self._inner(request)
            response = self.cors.add_response_headers(request, response)
        response = self.security.process_response(request, response)
        observe_request(response, route.endpoint, request.method, started)
        start_response(
            f"{response.status_code} {response.reason_phrase}",
            [
                *response.items(),
                *(("Set-Cookie", c.output(header="")) for c in response.cookies.values()),
            ],
        )
        return response

    def _common_and_view(self, request: HttpRequest) -> HttpResponse:
        route, kwargs = request.serving_match
        response = self.common.process_request(request) or route.view(request, **kwargs)
        return self.common.process_response(request, response)
