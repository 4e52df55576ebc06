"""Fixtures shared by the whole suite.

Integration tests ask for ``postgres`` or ``redis``: they skip (with the reason) in the
SQLite pass where those servers are not configured, and *fail* when a server is
configured but unreachable, so CI never goes green by skipping."""

from __future__ import annotations

import os

import pytest
from rest_framework.test import APIClient

from recommender.models import Scope
from recommender.services import api_key_create


@pytest.fixture(autouse=True)
def serving_registry_reset():
    """Every test starts and ends with an empty per-process serving registry, so no test
    serves a model (or a load error) left by another."""
    from recommender.serving import registry

    registry.reset()
    yield registry
    registry.reset()


@pytest.fixture
def make_api_client(db):
    """``make_api_client(*scopes)`` -> an APIClient sending a fresh key with those scopes."""

    def make(*scopes: str) -> APIClient:
        _, key = api_key_create(name="test-client", scopes=list(scopes) or list(Scope.values))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        return client

    return make


@pytest.fixture
def postgres(settings):
    """Skip unless the suite runs on PostgreSQL (the second CI pass)."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs PostgreSQL: runs in the DATABASE_URL=postgres://... pass")


@pytest.fixture
def redis_url() -> str:
    """The configured Redis, which must answer; skip when REDIS_URL is not set."""
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs Redis: runs in the REDIS_URL=redis://... pass")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"REDIS_URL={url} is set but Redis does not answer: {exc}")
    return url


@pytest.fixture
def subprocess_env(postgres, redis_url, settings, tmp_path) -> dict[str, str]:
    """The environment for a server or worker subprocess that shares this test's
    database (the test database, by URL), Redis and artifact directory."""
    from django.db import connection

    db = connection.settings_dict
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    return {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        ),
        "REDIS_URL": redis_url,
        "RECSITE_DATA_DIR": str(tmp_path / "subprocess-data"),
        "RECSITE_ARTIFACT_DIR": str(settings.RECSITE_ARTIFACT_DIR),
    }
