"""The recommendations read survives a dead database connection without a health check.

Serving skips Django's per-request ``SELECT 1`` (``CONN_HEALTH_CHECKS``) and retries its
one idempotent query on a new connection instead (``user_recent_item_pks``). Here the
connection's backend is terminated from another session, as a PostgreSQL restart or a
proxy would do: the next request must still be a 200 with the seen items filtered."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg2
import pytest
from django.db import connection

from recommender.models import Item, Scope
from tests.factories import EventFactory
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

URL = "/api/v1/recommendations/user-0"


def terminate(pid: int) -> None:
    """``pg_terminate_backend(pid)`` from a session of its own."""
    params = connection.get_connection_params()
    other = psycopg2.connect(**params)
    try:
        other.autocommit = True
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            assert cursor.fetchone()[0] is True
    finally:
        other.close()


def test_a_recommendation_after_the_backend_was_terminated_is_served(
    postgres, make_api_client, settings, tmp_path
):
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    spec = default_spec()
    create_catalog(spec)
    create_version(spec)
    api = make_api_client(Scope.RECOMMENDATIONS_READ)
    assert api.get(URL).status_code == 200
    EventFactory(
        event_id="after-training",
        user_external_id="user-0",
        item=Item.objects.get(external_id="item-10"),
        timestamp=datetime(2030, 1, 1, tzinfo=UTC),
    )
    terminate(connection.connection.info.backend_pid)

    response = api.get(URL, {"limit": 100})

    assert response.status_code == 200, response.json()
    returned = {item["item_id"] for item in response.json()["items"]}
    assert "item-10" not in returned
    assert len(returned) == len(spec.items) - 4  # 3 seen in training, 1 just now
