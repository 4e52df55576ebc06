"""The serving fast path (``recsite/wsgi_serving.py``) answers every GET of the serving
endpoints exactly as the API handler does: same status, headers and body (but the
recommendation id, new per list), for answers and every kind of refusal."""

from __future__ import annotations

import re

import pytest
from django.test import override_settings

from recommender import auth
from recommender.models import Scope
from recommender.services import api_key_create
from recsite.wsgi_dispatch import PathDispatcher, get_dispatching_application
from recsite.wsgi_serving import ServingFastPath, leading_serving_routes
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec
from tests.recsite.test_wsgi_dispatch import Answer, call, keep_test_connection  # noqa: F401

pytestmark = pytest.mark.django_db

RECOMMENDATION_ID = re.compile(rb'"recommendation_id":"[0-9a-f]{32}"')
# Per response, never equal between two: the time it was made.
VARYING_HEADERS = {"date"}


def make_applications() -> tuple[PathDispatcher, PathDispatcher]:
    """(with the fast path, without it): the same handlers otherwise. Middlewares read
    their settings when built."""
    slow = get_dispatching_application()
    fast = PathDispatcher(
        api=slow.api, full=slow.full, serving=ServingFastPath(leading_serving_routes())
    )
    return fast, slow


@pytest.fixture(scope="module")
def applications() -> tuple[PathDispatcher, PathDispatcher]:
    return make_applications()


@pytest.fixture
def key(settings, tmp_path) -> str:
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    spec = default_spec()
    create_catalog(spec)
    create_version(spec)
    _, raw = api_key_create(name="fast", scopes=[Scope.RECOMMENDATIONS_READ])
    return raw


def comparable(answer: Answer) -> tuple:
    headers = sorted((n.lower(), v) for n, v in answer.headers if n.lower() not in VARYING_HEADERS)
    return answer.status, headers, RECOMMENDATION_ID.sub(b"", answer.body)


def both(applications, path: str, query: str = "", **headers: str) -> tuple[Answer, Answer]:
    fast, slow = applications
    extra = {"QUERY_STRING": query, **headers}
    return call(fast, path, **extra), call(slow, path, **extra)


def test_only_get_of_the_serving_routes_takes_the_fast_path(applications):
    fast, _ = applications
    assert [route.endpoint for route in fast.serving.routes] == [
        "recommendations",
        "similar-items",
    ]
    get = {"REQUEST_METHOD": "GET"}
    assert fast.serving.match({**get, "PATH_INFO": "/api/v1/recommendations/u/1"})[1] == {
        "user_id": "u/1"
    }
    assert fast.serving.match({**get, "PATH_INFO": "/api/v1/items/shop/42/similar"})[1] == {
        "item_id": "shop/42"
    }
    for environ in (
        {"REQUEST_METHOD": "HEAD", "PATH_INFO": "/api/v1/recommendations/u"},
        {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/recommendations/u"},
        {**get, "PATH_INFO": "/api/v1/recommendations/"},
        {**get, "PATH_INFO": "/api/v1/events"},
        {**get, "PATH_INFO": "/admin/"},
        {**get, "PATH_INFO": "/api/v2/recommendations/u"},
    ):
        assert fast.serving.match(environ) is None, environ


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/api/v1/recommendations/user-0", ""),
        ("/api/v1/recommendations/user-0", "limit=5&offset=3&exclude=item-9,item-8"),
        ("/api/v1/recommendations/nobody", "limit=2"),
        ("/api/v1/recommendations/user-0", "limit=0"),
        ("/api/v1/recommendations/user-0", "recommender=nope"),
        ("/api/v1/recommendations/user-0", "category=no-such-category"),
        ("/api/v1/items/item-3/similar", "limit=4"),
        ("/api/v1/items/nope/similar", ""),
    ],
)
def test_answers_and_refusals_are_the_api_handlers(applications, key, path, query):
    fast, slow = both(applications, path, query, HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert comparable(fast) == comparable(slow)


@pytest.mark.parametrize(
    "authorization", [None, "Api-Key nope.nope", "Bearer something"], ids=["none", "bad", "scheme"]
)
def test_authentication_refusals_are_the_api_handlers(applications, key, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    fast, slow = both(applications, "/api/v1/recommendations/user-0", **headers)
    assert fast.status == 401 or fast.status == 403
    assert comparable(fast) == comparable(slow)


def test_a_key_without_the_scope_is_refused_alike(applications, key):
    _, events_only = api_key_create(name="writer", scopes=[Scope.EVENTS_WRITE])
    fast, slow = both(
        applications, "/api/v1/recommendations/user-0", HTTP_AUTHORIZATION=f"Api-Key {events_only}"
    )
    assert fast.status == 403
    assert comparable(fast) == comparable(slow)


def test_a_throttled_key_is_refused_alike(applications, key, monkeypatch):
    from rest_framework.settings import api_settings

    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "api_key": "1/min"}
    monkeypatch.setattr(auth.ApiKeyRateThrottle, "THROTTLE_RATES", rates)
    auth.ApiKeyRateThrottle._leases.clear()
    path, authorization = "/api/v1/recommendations/user-0", f"Api-Key {key}"
    try:
        both(applications, path, HTTP_AUTHORIZATION=authorization)
        fast, slow = both(applications, path, HTTP_AUTHORIZATION=authorization)
    finally:
        auth.ApiKeyRateThrottle._leases.clear()
    assert fast.status == slow.status == 429
    assert fast.body == slow.body
    assert {n for n, _ in comparable(fast)[1]} == {n for n, _ in comparable(slow)[1]}


@override_settings(CORS_ALLOWED_ORIGINS=["https://shop.example"])
def test_a_browser_origin_gets_the_same_cors_headers(applications, key):
    fast, slow = both(
        applications,
        "/api/v1/recommendations/user-0",
        HTTP_AUTHORIZATION=f"Api-Key {key}",
        HTTP_ORIGIN="https://shop.example",
    )
    assert ("access-control-allow-origin", "https://shop.example") in comparable(fast)[1]
    assert comparable(fast) == comparable(slow)


@override_settings(SECURE_SSL_REDIRECT=True)
def test_the_https_redirect_applies_alike(key):
    fast, slow = both(make_applications(), "/api/v1/recommendations/user-0", "limit=3")
    assert fast.status == 301
    assert comparable(fast) == comparable(slow)


def test_the_fast_path_is_counted_like_any_request(applications, key):
    fast, _ = applications
    answer = call(fast, "/api/v1/recommendations/user-0", HTTP_AUTHORIZATION=f"Api-Key {key}")
    metrics = call(fast, "/metrics").body.decode()
    series = 'recsite_http_requests_total{endpoint="recommendations",method="GET",status="200"}'
    counted = re.search(re.escape(series) + r" (\S+)", metrics)
    assert answer.status == 200 and counted and float(counted.group(1)) >= 1
