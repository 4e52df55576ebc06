"""POST /api/v1/items: batched upsert of the catalog."""

import pytest

from recommender.models import Item, Scope
from tests.factories import ItemFactory

URL = "/api/v1/items"
pytestmark = pytest.mark.django_db


@pytest.fixture
def client(make_api_client):
    return make_api_client(Scope.CATALOG_WRITE)


def test_new_items_are_created_with_defaults(client):
    response = client.post(
        URL,
        {"items": [{"item_id": "a", "title": "Alpha", "categories": ["x"]}, {"item_id": "b"}]},
        format="json",
    )
    assert response.status_code == 200
    assert response.json() == {"received": 2, "created": 2, "updated": 0}
    alpha = Item.objects.get(external_id="a")
    assert (alpha.title, alpha.categories, alpha.active) == ("Alpha", ["x"], True)


def test_fields_left_out_keep_their_value(client):
    ItemFactory(external_id="a", title="Alpha", categories=["x"])
    response = client.post(URL, {"items": [{"item_id": "a", "active": False}]}, format="json")
    assert response.json() == {"received": 1, "created": 0, "updated": 1}
    alpha = Item.objects.get(external_id="a")
    assert (alpha.title, alpha.categories, alpha.active) == ("Alpha", ["x"], False)


def test_an_unchanged_item_is_not_counted_as_updated(client):
    ItemFactory(external_id="a", title="Alpha")
    response = client.post(URL, {"items": [{"item_id": "a", "title": "Alpha"}]}, format="json")
    assert response.json()["updated"] == 0


def test_the_last_entry_for_an_id_wins(client):
    body = {"items": [{"item_id": "a", "title": "one"}, {"item_id": "a", "title": "two"}]}
    client.post(URL, body, format="json")
    assert Item.objects.get(external_id="a").title == "two"


def test_one_invalid_item_rejects_the_batch(client):
    body = {"items": [{"item_id": "ok"}, {"item_id": "bad", "categories": [1]}]}
    response = client.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["detail"]["errors"][0]["index"] == 1
    assert not Item.objects.exists()


def test_the_batch_size_is_bounded(client, settings):
    settings.RECSITE_ITEM_BATCH_MAX = 2
    body = {"items": [{"item_id": str(i)} for i in range(3)]}
    assert client.post(URL, body, format="json").status_code == 413


def test_needs_the_catalog_scope(make_api_client):
    client = make_api_client(Scope.EVENTS_WRITE)
    assert client.post(URL, {"items": [{"item_id": "a"}]}, format="json").status_code == 403
