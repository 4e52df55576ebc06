"""The WSGI application gunicorn serves (``recsite.wsgi_dispatch``), called directly with
a WSGI environ: the API and the probes run without the admin-only middlewares (no
session/CSRF cookie, no X-Frame-Options), the admin keeps all of them. Django's test
client builds its own handler from ``MIDDLEWARE``, so it could not show this."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO

import pytest
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from recommender.models import Scope
from recommender.services import api_key_create
from recsite.wsgi_dispatch import PathDispatcher, get_dispatching_application
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header_names(self) -> set[str]:
        return {name.lower() for name, _ in self.headers}

    def cookies(self) -> list[str]:
        return [value.strip() for name, value in self.headers if name.lower() == "set-cookie"]


@pytest.fixture(scope="module")
def application() -> PathDispatcher:
    return get_dispatching_application()


@pytest.fixture(autouse=True)
def keep_test_connection() -> Iterator[None]:
    """A WSGI handler closes the database connection after each request; here that
    connection holds the test's transaction (Django's test client does the same)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def call(application: PathDispatcher, path: str, **headers: str) -> Answer:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SCRIPT_NAME": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "testserver",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": BytesIO(b""),
        "wsgi.errors": BytesIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        **headers,
    }
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info=None):
        started.append((status, response_headers))

    result = application(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        result.close()
    status, response_headers = started[0]
    return Answer(int(status.split()[0]), response_headers, body)


def test_api_middleware_is_middleware_without_the_admin_only_ones():
    assert settings.ADMIN_ONLY_MIDDLEWARE <= set(settings.MIDDLEWARE)
    assert settings.API_MIDDLEWARE == [
        path for path in settings.MIDDLEWARE if path not in settings.ADMIN_ONLY_MIDDLEWARE
    ]
    assert settings.API_MIDDLEWARE[0] == "recsite.metrics.MetricsMiddleware"


def test_api_answers_with_a_key_without_admin_headers(application, settings, tmp_path):
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    spec = default_spec()
    create_catalog(spec)
    version = create_version(spec)
    _, key = api_key_create(name="dispatch", scopes=[Scope.RECOMMENDATIONS_READ])

    answer = call(application, "/api/v1/models/active", HTTP_AUTHORIZATION=f"Api-Key {key}")

    assert answer.status == 200
    assert json.loads(answer.body)["version"] == version.number
    assert answer.cookies() == []
    assert "x-frame-options" not in answer.header_names()


def test_api_refuses_a_missing_key_without_admin_headers(application):
    answer = call(application, "/api/v1/models/active")

    assert answer.status == 401
    assert json.loads(answer.body)["error"]["code"] == "not_authenticated"
    assert answer.cookies() == []
    assert "x-frame-options" not in answer.header_names()


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_probes_run_without_admin_headers(application, path):
    answer = call(application, path)

    assert answer.status == 200
    assert "x-frame-options" not in answer.header_names()


def test_admin_login_keeps_the_csrf_cookie_and_framing_header(application):
    answer = call(application, "/admin/login/")

    assert answer.status == 200
    assert any(cookie.startswith(f"{settings.CSRF_COOKIE_NAME}=") for cookie in answer.cookies())
    assert dict((name.lower(), value) for name, value in answer.headers)["x-frame-options"]


def test_an_admin_path_behind_the_api_prefix_is_an_api_404(application):
    """The resolver is anchored: ``/api/../admin/`` is an API path, never the admin."""
    answer = call(application, "/api/../admin/login/")

    assert answer.status == 404
    assert json.loads(answer.body)["error"]["code"] == "not_found"
    assert answer.cookies() == []
