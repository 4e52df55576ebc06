"""Similar items for every model family (issue 15): factor families by cosine of the item
embeddings, item-item families by the item's row, score families by the cosine of the
items' users in the training interactions."""

import numpy as np
import pytest

from recommender.families import FAMILIES, FamilyKind
from tests.recommender.serving_helpers import create_catalog, default_spec, publish_family

pytestmark = pytest.mark.django_db

SPEC = default_spec(seed=7)
N = len(SPEC.items)


@pytest.fixture
def catalog(artifact_dir):
    create_catalog(SPEC)


def similar(client, item: int, limit: int = 3) -> list[str]:
    response = client.get(f"/api/v1/items/{SPEC.items[item]}/similar?limit={limit}")
    assert response.status_code == 200, response.content
    return [i["item_id"] for i in response.json()["items"]]


def factors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    return {
        "user_embeddings": SPEC.user_factors,
        "user_biases": np.zeros(len(SPEC.users), np.float32),
        "item_embeddings": rng.normal(size=(N, SPEC.user_factors.shape[1])).astype(np.float32),
        "item_biases": np.zeros(N, np.float32),
    }


@pytest.mark.parametrize(
    "family", [f for f, spec in FAMILIES.items() if spec.kind is FamilyKind.FACTORS]
)
def test_a_factor_family_ranks_similar_items_by_embedding_cosine(family, catalog, make_api_client):
    arrays = factors()
    names = None
    if family == "lightfm":  # its artifact holds the feature embeddings too: identity only
        arrays |= {
            "item_feature_embeddings": arrays["item_embeddings"],
            "item_feature_biases": np.zeros(N, np.float32),
        }
        names = {"items": [f"id:{item}" for item in SPEC.items]}
    publish_family(SPEC, family, arrays, feature_names=names)
    unit = arrays["item_embeddings"] / np.linalg.norm(arrays["item_embeddings"], axis=1)[:, None]
    cosines = unit @ unit[4]
    cosines[4] = -np.inf

    expected = [SPEC.items[i] for i in np.argsort(-cosines, kind="stable")[:3]]

    assert similar(make_api_client(), 4) == expected


@pytest.mark.parametrize(
    "family", [f for f, spec in FAMILIES.items() if spec.kind is FamilyKind.ITEM_ITEM]
)
def test_an_item_item_family_returns_the_items_row(family, catalog, make_api_client):
    row = {7: 0.9, 2: 0.5, 11: 0.1}
    indptr = np.zeros(N + 1, np.int64)
    indptr[5:] = len(row)  # item 4's row only
    publish_family(
        SPEC,
        family,
        {
            "similarity_data": np.asarray(list(row.values()), np.float32),
            "similarity_indices": np.asarray(list(row), np.int32),
            "similarity_indptr": indptr,
        },
    )

    assert similar(make_api_client(), 4) == [SPEC.items[7], SPEC.items[2], SPEC.items[11]]


def test_a_score_family_ranks_similar_items_by_their_users(catalog, make_api_client):
    # item 4's users: user-0 (also had 9 and 12) and user-1 (also had 9); item 12 has a
    # second user of its own, so its cosine (1 / sqrt(2 x 2)) is below item 9's (2 / 2).
    seen = {
        SPEC.users[0]: [SPEC.items[i] for i in (4, 9, 12)],
        SPEC.users[1]: [SPEC.items[i] for i in (4, 9)],
        SPEC.users[2]: [SPEC.items[i] for i in (12, 20)],
    }
    publish_family(
        SPEC, "popularity", {"item_scores": np.linspace(1, 0, N, dtype=np.float32)}, seen=seen
    )

    assert similar(make_api_client(), 4, limit=2) == [SPEC.items[9], SPEC.items[12]]
