"""One WSGI callable, two Django handlers: requests for the API (``/api/...``) and the
probes (``/healthz``, ``/readyz``, ``/metrics``) run through ``settings.API_MIDDLEWARE``,
everything else (the admin) through the full ``settings.MIDDLEWARE``.

The admin-only middlewares (sessions, CSRF, auth, messages, X-Frame-Options, axes) were
~17 % of a serving request's Python CPU while doing nothing for an API-key caller. The
choice is made on ``PATH_INFO``, the same string Django's URL resolver matches, and every
``/api/...`` path resolves to an API route or the JSON 404 (the resolver is anchored at
the start), so no admin view is reachable through the short stack."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

API_PREFIX = "/api/"
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

StartResponse = Callable[..., Any]


class FastPath(Protocol):
    """A handler for the requests it ``match``es (``recsite/wsgi_serving.py``)."""

    def match(self, environ: dict[str, Any]) -> tuple[Any, ...] | None: ...

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse, *found: Any
    ) -> Iterable[bytes]: ...


class ApiWSGIHandler(WSGIHandler):
    """A ``WSGIHandler`` built from ``settings.API_MIDDLEWARE``.

    Django's ``load_middleware`` reads ``settings.MIDDLEWARE``; it runs once, in
    ``__init__`` (at import of the WSGI module, before any request thread), with the short
    list in its place, so the chain is built by Django's own code."""

    def load_middleware(self, is_async: bool = False) -> None:
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


def uses_api_middleware(path_info: str) -> bool:
    """Whether a request for ``path_info`` runs through the short middleware list."""
    return path_info.startswith(API_PREFIX) or path_info in PROBE_PATHS


class PathDispatcher:
    """The WSGI application: hands each request to the serving fast path
    (``recsite/wsgi_serving.py``: GET of the serving endpoints), the API or the full
    handler."""

    def __init__(
        self, *, api: WSGIHandler, full: WSGIHandler, serving: FastPath | None = None
    ) -> None:
        self.api = api
        self.full = full
        self.serving = serving

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.serving is not None:
            found = self.serving.match(environ)
            if found is not None:
                return self.serving(environ, start_response, *found)
        handler = self.api if uses_api_middleware(environ.get("PATH_INFO", "")) else self.full
        return handler(environ, start_response)


def get_dispatching_application() -> PathDispatcher:
    """Like ``django.core.wsgi.get_wsgi_application``, with the API and full handlers; the
    serving fast path is added by ``recsite/wsgi.py`` once the apps are loaded (it reads
    the URLconf, which imports the views and models)."""
    django.setup(set_prefix=False)
    return PathDispatcher(api=ApiWSGIHandler(), full=WSGIHandler())
