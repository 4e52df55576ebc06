"""The plain views of the serving endpoints answer exactly as their DRF views do: same
status, same bytes, same headers, for answers and every kind of error."""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from django.urls import resolve

from recommender import auth
from recommender.apis import RecommendationsApi, SimilarItemsApi
from recommender.ids import MAX_ID_LENGTH
from recommender.models import Scope
from recommender.renderers import json_bytes
from recommender.services import api_key_create, api_key_revoke
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec

pytestmark = pytest.mark.django_db

HEADERS = ("Content-Type", "Allow", "WWW-Authenticate", "Retry-After")
RECOMMENDATION_ID = re.compile(rb'"recommendation_id":"[0-9a-f]{32}"')


@pytest.fixture
def model(artifact_dir):
    spec = default_spec()
    create_catalog(spec)
    return create_version(spec)


def key(*scopes: str, revoked: bool = False) -> str:
    api_key, raw = api_key_create(name="views", scopes=list(scopes) or list(Scope.values))
    if revoked:
        api_key_revoke(api_key=api_key)
    return raw


def answer(view, path: str, params: dict, authorization: str | None, method: str = "get"):
    """``view``'s response to a request built from scratch (the same for both views)."""
    extra = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    query = f"?{urlencode(params)}" if params else ""
    request = getattr(RequestFactory(), method)(path + query, **extra)
    match = resolve(path)
    response = view(request, **match.kwargs)
    if hasattr(response, "render"):
        response.render()
    return response


def both(path: str, params: dict | None = None, authorization: str | None = None, **kw):
    """(plain view's response, DRF view's response) to the same request."""
    plain = resolve(path).func
    drf = plain.cls.as_view()
    return tuple(answer(view, path, params or {}, authorization, **kw) for view in (plain, drf))


def assert_same(plain, drf) -> None:
    assert plain.status_code == drf.status_code
    assert RECOMMENDATION_ID.sub(b"", plain.content) == RECOMMENDATION_ID.sub(b"", drf.content)
    assert {h: plain.get(h) for h in HEADERS} == {h: drf.get(h) for h in HEADERS}


RECOMMENDATIONS = "/api/v1/recommendations/user-0"
SIMILAR = "/api/v1/items/item-4/similar"


def test_the_serving_urls_route_get_to_the_plain_views():
    for path, api in ((RECOMMENDATIONS, RecommendationsApi), (SIMILAR, SimilarItemsApi)):
        view = resolve(path).func
        assert view.__module__ == "recommender.serving_views"
        assert view.cls is api and view.view_class is api


@pytest.mark.parametrize(
    "path,params",
    [
        (RECOMMENDATIONS, {"limit": 5}),
        (RECOMMENDATIONS, {"limit": 3, "offset": 2, "exclude": "item-1,item-2"}),
        (RECOMMENDATIONS, {"category": "noir"}),
        ("/api/v1/recommendations/nobody", {}),
        (SIMILAR, {"limit": 4}),
        # errors: parameters, ids, unknown things
        (RECOMMENDATIONS, {"limit": 0}),
        (RECOMMENDATIONS, {"limit": "many", "offset": -1}),
        (RECOMMENDATIONS, {"exclude": ",".join(f"i{n}" for n in range(101))}),
        (RECOMMENDATIONS, {"category": "no-such-category"}),
        (RECOMMENDATIONS, {"recommender": "not a slug"}),
        (RECOMMENDATIONS, {"recommender": "nope"}),
        ("/api/v1/recommendations/" + "u" * (MAX_ID_LENGTH + 1), {}),
        ("/api/v1/items/" + "i" * (MAX_ID_LENGTH + 1) + "/similar", {}),
        ("/api/v1/items/no-such-item/similar", {}),
        (SIMILAR, {"limit": 1000}),
    ],
)
def test_answers_and_input_errors_are_the_same(model, path, params):
    plain, drf = both(path, params, f"Api-Key {key()}")
    assert_same(plain, drf)
    assert plain["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "authorization",
    [None, "Api-Key ", "Api-Key nope.nope", "Bearer something", "api-key lowercase"],
)
@pytest.mark.parametrize("path", [RECOMMENDATIONS, SIMILAR])
def test_missing_and_wrong_keys_are_the_same_401(model, path, authorization):
    plain, drf = both(path, {}, authorization)
    assert_same(plain, drf)
    assert plain.status_code == 401 and plain["WWW-Authenticate"] == "Api-Key"


@pytest.mark.parametrize("path", [RECOMMENDATIONS, SIMILAR])
def test_a_revoked_key_and_a_missing_scope_are_the_same(model, path):
    assert_same(*both(path, {}, f"Api-Key {key(revoked=True)}"))
    plain, drf = both(path, {}, f"Api-Key {key(Scope.EVENTS_WRITE, Scope.CATALOG_WRITE)}")
    assert_same(plain, drf)
    assert plain.status_code == 403


@pytest.fixture
def frozen_throttle(settings, monkeypatch):
    """The throttle at 1/min in the process's cache, with a clock that does not move."""
    settings.REDIS_URL = ""
    cache.clear()
    monkeypatch.setattr(auth.ApiKeyRateThrottle, "wall_clock", staticmethod(lambda: 5_000.0))
    rates = {"api_key": "1/min"}
    monkeypatch.setattr(auth.ApiKeyRateThrottle, "THROTTLE_RATES", rates)


def test_throttling_is_the_same_429_with_retry_after(model, frozen_throttle):
    authorization = f"Api-Key {key()}"
    plain_view = resolve(RECOMMENDATIONS).func
    first = answer(plain_view, RECOMMENDATIONS, {}, authorization)
    assert first.status_code == 200
    plain, drf = both(RECOMMENDATIONS, {}, authorization)
    assert_same(plain, drf)
    assert plain.status_code == 429 and plain["Retry-After"] == "60"


def test_the_plain_view_takes_its_throttle_leases_from_redis(
    model, redis_url, settings, monkeypatch
):
    settings.REDIS_URL = redis_url
    auth.ApiKeyRateThrottle._leases.clear()
    monkeypatch.setattr(auth.ApiKeyRateThrottle, "THROTTLE_RATES", {"api_key": "2/min"})
    authorization = f"Api-Key {key()}"
    view = resolve(RECOMMENDATIONS).func
    try:
        codes = [answer(view, RECOMMENDATIONS, {}, authorization).status_code for _ in range(3)]
    finally:
        auth.ApiKeyRateThrottle._leases.clear()
    assert codes == [200, 200, 429]


def test_without_a_model_the_503_is_the_same(db):
    plain, drf = both(RECOMMENDATIONS, {}, f"Api-Key {key()}")
    assert_same(plain, drf)
    assert plain.status_code == 503


@pytest.mark.parametrize("method", ["post", "put", "delete", "head", "options"])
def test_other_methods_are_answered_by_the_drf_view(model, method):
    plain, drf = both(RECOMMENDATIONS, {}, f"Api-Key {key()}", method=method)
    assert_same(plain, drf)
    if method not in ("head", "options"):
        assert plain.status_code == 405
        assert json.loads(plain.content)["error"]["code"] == "method_not_allowed"


def test_the_body_is_written_by_orjson(model):
    plain, _ = both(RECOMMENDATIONS, {"limit": 3}, f"Api-Key {key()}")
    assert plain.content == json_bytes(json.loads(plain.content))
