"""``?explain=true`` (issue 15): each recommended item says what ranked it (``source``)
and which of the user's items contributed most (``because``); off by default."""

from datetime import UTC, datetime

import numpy as np
import pytest

from recommender.models import Item
from tests.factories import EventFactory
from tests.recommender.serving_helpers import (
    create_catalog,
    create_version,
    default_spec,
    publish_family,
)

pytestmark = pytest.mark.django_db

SPEC = default_spec(seed=5)


@pytest.fixture
def catalog(artifact_dir):
    create_catalog(SPEC)


def event(user: str, item: int, minute: int) -> None:
    EventFactory(
        user_external_id=user,
        item=Item.objects.get(external_id=SPEC.items[item]),
        timestamp=datetime(2025, 1, 1, 12, minute, tzinfo=UTC),
    )


def recommend(client, user: str, query: str = "explain=true&limit=4") -> list[dict]:
    response = client.get(f"/api/v1/recommendations/{user}?{query}")
    assert response.status_code == 200, response.content
    return response.json()["items"]


def chain_similarity() -> dict[str, np.ndarray]:
    """Item i recommends item i+1 (weight 1) and item i+2 (weight 0.5)."""
    n = len(SPEC.items)
    indices = np.stack([(np.arange(n) + 1) % n, (np.arange(n) + 2) % n], axis=1).ravel()
    return {
        "similarity_data": np.tile(np.asarray([1.0, 0.5], np.float32), n),
        "similarity_indices": indices.astype(np.int32),
        "similarity_indptr": np.arange(0, 2 * n + 1, 2, dtype=np.int64),
    }


def test_explanations_are_off_by_default(catalog, make_api_client):
    publish_family(SPEC, "itemknn", chain_similarity())
    event("u", 3, minute=1)

    items = recommend(make_api_client(), "u", "limit=4")

    assert all("source" not in item and "because" not in item for item in items)


def test_an_item_item_explanation_names_the_largest_terms_of_the_sum(catalog, make_api_client):
    publish_family(SPEC, "itemknn", chain_similarity())
    event("u", 3, minute=1)
    event("u", 4, minute=2)

    items = recommend(make_api_client(), "u")

    explained = {item["item_id"]: (item["source"], item["because"]) for item in items}
    # item 5 = 1.0 x item 4 + 0.5 x item 3; item 6 = 0.5 x item 4
    assert explained[SPEC.items[5]] == ("model", [SPEC.items[4], SPEC.items[3]])
    assert explained[SPEC.items[6]] == ("model", [SPEC.items[4]])


def test_a_factor_explanation_names_the_history_items_nearest_by_cosine(catalog, make_api_client):
    rng = np.random.default_rng(2)
    items = rng.normal(size=(len(SPEC.items), 3)).astype(np.float32)
    publish_family(
        SPEC,
        "svd",
        {
            "user_embeddings": SPEC.user_factors[:, :3],
            "user_biases": np.zeros(len(SPEC.users), np.float32),
            "item_embeddings": items,
            "item_biases": np.zeros(len(SPEC.items), np.float32),
        },
        seen={SPEC.users[0]: SPEC.items[:4]},
    )
    event(SPEC.users[0], 7, minute=1)  # training saw 0-3; 7 came after

    body = recommend(make_api_client(), SPEC.users[0], "explain=true&limit=3")

    history = [0, 1, 2, 3, 7]
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    for item in body:
        cosines = unit[history] @ unit[SPEC.items.index(item["item_id"])]
        nearest = [history[i] for i in np.argsort(-cosines, kind="stable") if cosines[i] > 0][:3]
        assert item["source"] == "model"
        assert item["because"] == [SPEC.items[i] for i in nearest]


def test_a_popularity_fallback_explains_nothing(catalog, make_api_client):
    publish_family(SPEC, "itemknn", chain_similarity())

    items = recommend(make_api_client(), "stranger")

    assert {(item["source"], tuple(item["because"])) for item in items} == {
        ("popularity_fallback", ())
    }


def test_a_new_catalogue_item_is_explained_as_a_category_cold_start(catalog, make_api_client):
    create_version(SPEC)  # LightFM with category features
    Item.objects.create(external_id="fresh", title="Fresh", categories=["noir"])
    event(SPEC.users[0], 9, minute=1)

    items = recommend(make_api_client(), SPEC.users[0], "explain=true&limit=100")

    sources = {item["item_id"]: item["source"] for item in items}
    assert sources["fresh"] == "cold_start_category"
    assert {s for i, s in sources.items() if i != "fresh"} == {"model"}
    assert all(len(item["because"]) <= 3 for item in items)


def test_the_schema_documents_explain(make_api_client):
    schema = make_api_client().get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/v1/recommendations/{user_id}"]["get"]
    assert "explain" in {p["name"] for p in operation["parameters"]}
    item = schema["components"]["schemas"]["RecommendedItemOutput"]["properties"]
    assert {"source", "because"} <= set(item)
