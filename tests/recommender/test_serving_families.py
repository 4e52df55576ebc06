"""Serving every model family (issue 15): item-item families score the user's current
history (an event posted a moment ago changes the next response; a user unknown at
training with one event is served personally), factor families without feature
embeddings score as LightFM does, a score family ranks everyone alike."""

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

SPEC = default_spec(seed=1)


def publish(family: str, arrays: dict, params: dict | None = None) -> None:
    publish_family(SPEC, family, arrays, params)


def chain_similarity() -> dict[str, np.ndarray]:
    """Item i recommends item i+1 (weight 1) and item i+2 (weight 0.5)."""
    n = len(SPEC.items)
    indices = np.stack([(np.arange(n) + 1) % n, (np.arange(n) + 2) % n], axis=1).ravel()
    return {
        "similarity_data": np.tile(np.asarray([1.0, 0.5], np.float32), n),
        "similarity_indices": indices.astype(np.int32),
        "similarity_indptr": np.arange(0, 2 * n + 1, 2, dtype=np.int64),
    }


@pytest.fixture
def catalog(artifact_dir):
    create_catalog(SPEC)
    create_version(SPEC)  # v1: LightFM


def recommend(client, user: str, limit: int = 3) -> dict:
    response = client.get(f"/api/v1/recommendations/{user}?limit={limit}")
    assert response.status_code == 200, response.content
    return response.json()


def event(user: str, item: str, minute: int) -> None:
    EventFactory(
        user_external_id=user,
        item=Item.objects.get(external_id=item),
        timestamp=datetime(2025, 1, 1, 12, minute, tzinfo=UTC),
    )


def test_an_item_item_model_scores_the_current_history_at_once(catalog, make_api_client):
    publish("itemknn", chain_similarity())
    client = make_api_client()
    first, second = SPEC.items[3], SPEC.items[10]

    assert recommend(client, "newcomer")["fallback"] == "unknown_user"  # no history yet

    event("newcomer", first, minute=1)  # unknown at training: one event is enough
    body = recommend(client, "newcomer")
    assert body["fallback"] is None
    assert [i["item_id"] for i in body["items"][:2]] == [SPEC.items[4], SPEC.items[5]]

    event("newcomer", second, minute=2)  # posted a moment ago: the next response changes
    body = recommend(client, "newcomer", limit=5)
    top = {i["item_id"] for i in body["items"][:4]}
    assert {SPEC.items[11], SPEC.items[12]} <= top
    assert first not in top and second not in top  # seen items stay filtered


def test_recency_weighting_ranks_the_latest_history_first(catalog, make_api_client):
    publish("ease", chain_similarity(), {"recency_half_life": 0.3})
    client = make_api_client()
    event("u", SPEC.items[3], minute=1)
    event("u", SPEC.items[10], minute=2)  # the latest

    body = recommend(client, "u", limit=1)

    assert body["items"][0]["item_id"] == SPEC.items[11]


def test_similar_items_of_an_item_item_model_are_its_row(catalog, make_api_client):
    publish("itemknn", chain_similarity())
    response = make_api_client().get(f"/api/v1/items/{SPEC.items[3]}/similar?limit=2")
    assert response.status_code == 200, response.content
    assert [i["item_id"] for i in response.json()["items"]] == [SPEC.items[4], SPEC.items[5]]


def test_a_factor_model_without_feature_embeddings_scores_its_users(catalog, make_api_client):
    item_embeddings = np.stack([SPEC.item_representation(i) for i in SPEC.items])
    publish(
        "als",
        {
            "user_embeddings": SPEC.user_factors,
            "user_biases": np.zeros(len(SPEC.users), np.float32),
            "item_embeddings": item_embeddings,
            "item_biases": np.zeros(len(SPEC.items), np.float32),
        },
    )
    user = SPEC.users[0]
    expected = np.argsort(-(item_embeddings @ SPEC.user_factors[0]), kind="stable")[:3]

    body = recommend(make_api_client(), user)

    assert body["fallback"] is None
    assert [i["item_id"] for i in body["items"]] == [SPEC.items[i] for i in expected]


def test_a_score_family_ranks_every_user_alike(catalog, make_api_client):
    scores = np.linspace(0, 1, len(SPEC.items), dtype=np.float32)
    publish("popularity", {"item_scores": scores})
    client = make_api_client()

    bodies = [recommend(client, user) for user in ("anyone", SPEC.users[0])]

    assert [i["item_id"] for i in bodies[0]["items"]] == list(reversed(SPEC.items))[:3]
    assert bodies[0]["items"] == bodies[1]["items"] and bodies[0]["fallback"] is None
