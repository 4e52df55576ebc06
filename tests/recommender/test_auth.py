"""API keys cached per process, and the throttle's leases from Redis."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from recommender import auth
from recommender.models import ApiKey, Scope
from recommender.redis_client import redis_client
from recommender.services import api_key_revoke

URL = "/api/v1/model-versions"


@pytest.fixture
def api(make_api_client):
    return make_api_client(Scope.TRAINING_WRITE)


class SteppedClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    """The key cache reads this clock; its state starts afresh so no earlier test's
    check time or entries leak in."""
    stepped = SteppedClock()
    monkeypatch.setattr(auth.key_cache, "clock", stepped)
    monkeypatch.setattr(auth.key_cache, "_checked_at", 0.0)
    auth.key_cache.clear()
    return stepped


def test_a_validated_key_is_not_looked_up_again(api, django_assert_num_queries):
    assert api.get(URL).status_code == 200
    with django_assert_num_queries(0):
        # An invalid recommender name is refused before the view's own query.
        assert api.get("/api/v1/models/active?recommender=no%20such").status_code == 400


def test_revoking_through_the_service_applies_at_once(api, django_capture_on_commit_callbacks):
    assert api.get(URL).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(api_key=ApiKey.objects.get())
    response = api.get(URL)
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_a_change_made_by_another_process_applies_at_the_next_generation_check(api, clock):
    """Another process's revoke bumps the shared token; this one drops its cache at its
    next check (at most every CHECK_SECONDS)."""
    assert api.get(URL).status_code == 200
    ApiKey.objects.update(revoked=True)  # no signal here: as if done elsewhere
    cache.set(auth.GENERATION_KEY, "bumped-by-another-process", None)
    clock.advance(auth.CHECK_SECONDS / 2)
    assert api.get(URL).status_code == 200  # still cached: the check is not due yet
    clock.advance(auth.CHECK_SECONDS / 2)
    assert api.get(URL).status_code == 401  # the check ran and saw the new token


def test_without_the_shared_token_a_change_applies_after_the_cache_time(api, settings, clock):
    settings.RECSITE_API_KEY_CACHE_SECONDS = 5
    assert api.get(URL).status_code == 200
    ApiKey.objects.update(revoked=True)
    clock.advance(4.9)
    assert api.get(URL).status_code == 200  # trusted for the cache time
    clock.advance(0.1)
    assert api.get(URL).status_code == 401


def test_a_cache_time_of_zero_checks_every_request(api, settings):
    settings.RECSITE_API_KEY_CACHE_SECONDS = 0
    assert api.get(URL).status_code == 200
    ApiKey.objects.update(revoked=True)
    assert api.get(URL).status_code == 401


def test_wrong_keys_are_never_cached(db):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Api-Key abcdefgh.wrong")
    for _ in range(3):
        assert client.get(URL).status_code == 401
    assert auth.key_cache._entries == {}


# --- the throttle without Redis ---------------------------------------------------------


def test_without_redis_retry_after_is_the_time_left_in_the_window(
    api, settings, throttle_rate, monkeypatch
):
    settings.REDIS_URL = ""
    cache.clear()
    now = [5_000.0]
    monkeypatch.setattr(auth.ApiKeyRateThrottle, "wall_clock", staticmethod(lambda: now[0]))
    throttle_rate("2/min")
    assert [api.get(URL).status_code for _ in range(2)] == [200, 200]
    now[0] += 42  # the window opened 42 s ago
    refused = api.get(URL)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "18"


# --- the throttle with Redis ------------------------------------------------------------


@pytest.fixture
def redis_throttle(redis_url, settings):
    """The throttle against the configured Redis, with fresh leases."""
    import redis

    settings.REDIS_URL = redis_url
    auth.ApiKeyRateThrottle._leases.clear()
    yield redis.Redis.from_url(redis_url)
    auth.ApiKeyRateThrottle._leases.clear()


@pytest.fixture
def throttle_rate(monkeypatch):
    from rest_framework.settings import api_settings

    def set_rate(rate: str) -> None:
        rates = {**api_settings.DEFAULT_THROTTLE_RATES, "api_key": rate}
        monkeypatch.setattr(auth.ApiKeyRateThrottle, "THROTTLE_RATES", rates)

    return set_rate


def counter(client, api_key: ApiKey) -> int:
    value = client.get(f"recsite:throttle_api_key_{api_key.prefix}")
    return int(value) if value is not None else 0


def test_a_small_rate_is_exact_with_redis(api, redis_throttle, throttle_rate):
    throttle_rate("3/min")
    codes = [api.get(URL).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    assert counter(redis_throttle, ApiKey.objects.get()) == 4  # the 5th never asked Redis


def test_a_large_rate_takes_leases_and_refuses_past_the_rate(api, redis_throttle, throttle_rate):
    throttle_rate("1000/min")  # leases of 10
    key = ApiKey.objects.get()
    for _ in range(15):
        assert api.get(URL).status_code == 200
    assert counter(redis_throttle, key) == 20  # two leases for 15 requests

    # Another process has used up the window: this one admits what its lease holds,
    # then is refused with the window's time left.
    redis_throttle.set(f"recsite:throttle_api_key_{key.prefix}", 1000, keepttl=True)
    codes = [api.get(URL).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    refused = api.get(URL)
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60


def test_the_window_expires_in_redis(api, redis_throttle, throttle_rate):
    throttle_rate("5/s")
    key = ApiKey.objects.get()
    api.get(URL)
    left = redis_throttle.pttl(f"recsite:throttle_api_key_{key.prefix}")
    assert 0 < left <= 1000


def test_an_unreachable_redis_lets_requests_through(api, settings, throttle_rate):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    auth._redis_take.cache_clear()
    redis_client.cache_clear()
    auth.ApiKeyRateThrottle._leases.clear()
    throttle_rate("1/min")
    try:
        assert [api.get(URL).status_code for _ in range(3)] == [200, 200, 200]
    finally:
        auth._redis_take.cache_clear()
        redis_client.cache_clear()
