"""A new catalogue item without known categories starts from its title (issue 15): a
LightFM model trained with title terms scores it through the TF-IDF weighted mean of its
words' feature embeddings (with its known categories, each weighing 1)."""

import numpy as np
import pytest

from recommender.models import Item
from recommender.serving.registry import registry
from recommender.text_features import TitleTerms
from tests.recommender.serving_helpers import create_catalog, default_spec, publish_family

pytestmark = pytest.mark.django_db

SPEC = default_spec(seed=9)
TERMS = TitleTerms(["heist", "red"], np.asarray([1.7, 1.2], np.float32))


@pytest.fixture
def model(artifact_dir) -> dict[str, np.ndarray]:
    """A LightFM version whose item features are identities, SPEC's categories and the
    words of TERMS; returns each category's and word's embedding."""
    create_catalog(SPEC)
    rng = np.random.default_rng(4)
    dim = SPEC.user_factors.shape[1]
    categories = sorted(SPEC.category_factors)
    embeddings = {
        **{f"category:{c}": SPEC.category_factors[c] for c in categories},
        **{f"term:{t}": rng.normal(size=dim).astype(np.float32) for t in TERMS.terms},
    }
    n = len(SPEC.items)
    publish_family(
        SPEC,
        "lightfm",
        {
            "user_embeddings": SPEC.user_factors,
            "user_biases": np.zeros(len(SPEC.users), np.float32),
            "item_embeddings": np.stack([SPEC.item_representation(i) for i in SPEC.items]),
            "item_biases": np.zeros(n, np.float32),
            "item_feature_embeddings": np.concatenate(
                [SPEC.item_factors, *[e[None, :] for e in embeddings.values()]]
            ),
            "item_feature_biases": np.zeros(n + len(embeddings), np.float32),
            "item_term_idf": TERMS.idf,
        },
        feature_names={"items": [f"id:{i}" for i in SPEC.items] + list(embeddings)},
    )
    return embeddings


def tail_embedding(item_id: str) -> np.ndarray:
    state = registry.state("default")
    position = state.universe.position(item_id)
    assert position is not None, f"{item_id} is not served"
    return np.asarray(state.blocks[1][0][position - len(state.universe.head_ids)])


def test_an_item_without_categories_is_scored_through_its_title_words(model, make_api_client):
    Item.objects.create(external_id="fresh", title="The Red Heist")
    registry.refresh()

    weights = TERMS.weights(["The Red Heist"]).toarray()[0]
    expected = (weights[0] * model["term:heist"] + weights[1] * model["term:red"]) / weights.sum()

    np.testing.assert_allclose(tail_embedding("fresh"), expected, rtol=1e-5, atol=1e-6)
    response = make_api_client().get("/api/v1/items/fresh/similar?limit=3")
    assert response.status_code == 200, response.content


def test_known_categories_and_title_words_weigh_together(model):
    Item.objects.create(external_id="mixed", title="red", categories=["noir"])
    registry.refresh()

    expected = (model["category:noir"] + model["term:red"]) / 2  # "red" alone weighs 1

    np.testing.assert_allclose(tail_embedding("mixed"), expected, rtol=1e-5, atol=1e-6)


def test_an_item_with_neither_known_categories_nor_known_words_is_not_served(
    model, make_api_client
):
    Item.objects.create(external_id="plain", title="Nothing Known", categories=["jazz"])
    registry.refresh()

    response = make_api_client().get("/api/v1/items/plain/similar")

    assert response.status_code == 404, response.content
