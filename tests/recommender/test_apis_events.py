"""POST /api/v1/events: idempotent, all or nothing, bounded, scoped."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from recommender.models import Event, Item, Scope
from tests.factories import ItemFactory

URL = "/api/v1/events"
pytestmark = pytest.mark.django_db


def batch(n: int, start: int = 0, **overrides) -> dict:
    events = []
    for i in range(start, start + n):
        event = {
            "event_id": f"e{i}",
            "user_id": f"u{i % 7}",
            "item_id": f"i{i % 11}",
            "type": "view",
            "timestamp": "2025-01-01T00:00:00Z",
        }
        event.update(overrides)
        events.append(event)
    return {"events": events}


@pytest.fixture
def client(make_api_client):
    return make_api_client(Scope.EVENTS_WRITE)


def test_a_batch_is_stored_and_counted(client):
    response = client.post(URL, batch(30), format="json")
    assert response.status_code == 201
    assert response.json() == {"received": 30, "created": 30, "duplicates": 0}
    assert Event.objects.count() == 30
    stored = Event.objects.get(event_id="e3")
    assert (stored.user_external_id, stored.item.external_id) == ("u3", "i3")
    assert stored.timestamp == datetime(2025, 1, 1, tzinfo=UTC)


def test_resending_a_batch_writes_nothing_twice(client):
    client.post(URL, batch(20), format="json")
    response = client.post(URL, batch(30), format="json")
    assert response.json() == {"received": 30, "created": 10, "duplicates": 20}
    assert Event.objects.count() == 30


def test_a_repeated_event_id_inside_one_batch_is_stored_once(client):
    body = batch(3)
    body["events"].append(dict(body["events"][0]))
    response = client.post(URL, body, format="json")
    assert response.json() == {"received": 4, "created": 3, "duplicates": 1}


def test_one_bad_event_rejects_the_whole_batch_with_every_reason(client):
    body = batch(5)
    body["events"][1]["type"] = "teleport"
    del body["events"][3]["user_id"]
    future = datetime.now(UTC) + timedelta(days=1)
    body["events"][4]["timestamp"] = future.isoformat()
    response = client.post(URL, body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_events"
    assert {(e["index"], e["field"]) for e in error["detail"]["errors"]} == {
        (1, "type"),
        (3, "user_id"),
        (4, "timestamp"),
    }
    assert Event.objects.count() == 0
    assert Item.objects.count() == 0


def test_unknown_items_are_created_unless_the_catalog_is_strict(client, settings):
    ItemFactory(external_id="known")
    response = client.post(URL, batch(1, item_id="brand-new"), format="json")
    assert response.status_code == 201
    assert Item.objects.filter(external_id="brand-new", active=True).exists()

    settings.RECSITE_STRICT_CATALOG = True
    body = {"events": [batch(1, start=5, item_id="known")["events"][0]]}
    body["events"].append(batch(1, start=6, item_id="nowhere")["events"][0])
    response = client.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["detail"]["errors"] == [
        {"index": 1, "field": "item_id", "message": "unknown item 'nowhere' (strict catalog)"}
    ]
    assert not Event.objects.filter(event_id="e5").exists()


def test_weight_and_recommendation_id_are_kept(client):
    body = batch(1, type="rating", weight=4.5, recommendation_id="rec-1")
    client.post(URL, body, format="json")
    stored = Event.objects.get()
    assert (stored.event_type, stored.weight, stored.recommendation_id) == ("rating", 4.5, "rec-1")


def test_an_oversized_batch_gets_413_and_writes_nothing(client, settings):
    settings.RECSITE_EVENT_BATCH_MAX = 10
    response = client.post(URL, batch(11), format="json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "batch_too_large"
    assert response.json()["error"]["detail"] == {"max": 10, "received": 11}
    assert Event.objects.count() == 0


def test_an_oversized_body_gets_413(client, settings):
    settings.RECSITE_MAX_BODY_BYTES = 1000
    response = client.post(URL, batch(20), format="json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(
    "body",
    ["{not json", "[]", '{"events": {}}', '{"events": "x"}', "null", '{"other": []}'],
)
def test_malformed_bodies_get_400_with_the_error_shape(client, body):
    response = client.post(URL, body, content_type="application/json")
    assert response.status_code == 400
    assert set(response.json()["error"]) == {"code", "message", "detail"}


def test_unicode_and_long_ids(client):
    body = batch(1, user_id="ユーザー-ü", item_id="é" * 255)
    assert client.post(URL, body, format="json").status_code == 201
    too_long = batch(1, start=2, item_id="é" * 256)
    assert client.post(URL, too_long, format="json").status_code == 400


def test_without_a_key_401_and_with_the_wrong_scope_403(make_api_client, client):
    from rest_framework.test import APIClient

    anonymous = APIClient().post(URL, batch(1), format="json")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    wrong = make_api_client(Scope.CATALOG_WRITE).post(URL, batch(1), format="json")
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "permission_denied"
    assert Event.objects.count() == 0


def test_a_bad_or_revoked_key_is_refused(client, make_api_client):
    from rest_framework.test import APIClient

    from recommender.models import ApiKey

    bogus = APIClient()
    bogus.credentials(HTTP_AUTHORIZATION="Api-Key nope.nope")
    assert bogus.post(URL, batch(1), format="json").status_code == 401
    ApiKey.objects.update(revoked=True)
    response = client.post(URL, batch(1), format="json")
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_requests_are_throttled_per_key(make_api_client, settings):
    from django.core.cache import cache
    from rest_framework.settings import api_settings

    from recommender.auth import ApiKeyRateThrottle

    cache.clear()
    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "api_key": "2/min"}
    original = ApiKeyRateThrottle.THROTTLE_RATES
    ApiKeyRateThrottle.THROTTLE_RATES = rates
    try:
        first = make_api_client(Scope.EVENTS_WRITE)
        second = make_api_client(Scope.EVENTS_WRITE)
        codes = [first.post(URL, batch(1, start=i), format="json").status_code for i in range(3)]
        assert codes == [201, 201, 429]
        assert first.post(URL, batch(1), format="json").json()["error"]["code"] == "throttled"
        assert second.post(URL, batch(1, start=9), format="json").status_code == 201
    finally:
        ApiKeyRateThrottle.THROTTLE_RATES = original
        cache.clear()


def test_the_error_body_is_json_with_content_type(client):
    response = client.post(URL, json.dumps({"events": [{}]}), content_type="application/json")
    assert response["Content-Type"] == "application/json"


def test_ids_with_tabs_newlines_and_backslashes_are_stored_exactly(client):
    odd = ["tab\there", "line\nbreak", "back\\slash", "\\N", "cr\rlf"]
    body = {
        "events": [
            batch(1, start=i, user_id=name, item_id=f"item-{name}")["events"][0]
            for i, name in enumerate(odd)
        ]
    }
    assert client.post(URL, body, format="json").json()["created"] == len(odd)
    stored = set(Event.objects.values_list("user_external_id", flat=True))
    assert stored == set(odd)
    assert set(Item.objects.values_list("external_id", flat=True)) == {f"item-{n}" for n in odd}


def test_a_weight_beyond_the_maximum_is_a_400_naming_the_field(client, settings):
    settings.RECSITE_EVENT_WEIGHT_MAX = 100
    response = client.post(URL, batch(2, weight=1e39), format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_events"
    assert {(e["index"], e["field"]) for e in error["detail"]["errors"]} == {
        (0, "weight"),
        (1, "weight"),
    }
    assert Event.objects.count() == 0


def test_a_non_finite_weight_is_a_400_naming_the_field(client):
    body = json.dumps({"events": batch(1)["events"]}).replace('"view"', '"view", "weight": NaN')
    response = client.post(URL, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["detail"]["errors"][0]["field"] == "weight"


def test_an_event_dated_before_the_minimum_is_a_400(client, settings):
    settings.RECSITE_EVENT_MIN_TIMESTAMP = datetime(1990, 1, 1, tzinfo=UTC)
    response = client.post(URL, batch(1, timestamp="1989-12-31T23:59:59Z"), format="json")
    assert response.status_code == 400
    assert response.json()["error"]["detail"]["errors"][0]["field"] == "timestamp"
    assert Event.objects.count() == 0


def test_one_event_id_twice_with_different_content_is_a_400_not_merged(client):
    body = batch(2)
    body["events"].append({**body["events"][0], "item_id": "other"})
    response = client.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["detail"]["errors"] == [
        {
            "index": 2,
            "field": "event_id",
            "message": "'e0' is also at index 0 with different content",
        }
    ]
    assert Event.objects.count() == 0


def _client_named(name: str):
    from rest_framework.test import APIClient

    from recommender.services import api_key_create

    _, key = api_key_create(name=name, scopes=[Scope.EVENTS_WRITE])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def test_two_clients_sending_the_same_event_id_both_have_their_event_stored():
    web, mobile = _client_named("web-shop"), _client_named("mobile-app")
    first = web.post(URL, batch(1, user_id="web-user"), format="json")
    second = mobile.post(URL, batch(1, user_id="mobile-user"), format="json")
    assert first.json()["created"] == 1 and second.json()["created"] == 1
    stored = dict(Event.objects.filter(event_id="e0").values_list("client", "user_external_id"))
    assert stored == {"api:web-shop": "web-user", "api:mobile-app": "mobile-user"}


def test_a_replay_by_the_same_client_is_a_duplicate_even_with_a_rotated_key():
    _client_named("web-shop").post(URL, batch(3), format="json")
    response = _client_named("web-shop").post(URL, batch(3), format="json")
    assert response.json() == {"received": 3, "created": 0, "duplicates": 3}
    assert Event.objects.count() == 3
