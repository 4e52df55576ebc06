"""Fold-in (issue 15): a factor model (als, svd) serves a user new since training, or
whose history changed since, from a user vector solved at request time against the
stored item factors, as implicit's ``recalculate_user`` computes it."""

from datetime import UTC, datetime

import numpy as np
import pytest
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from recommender.models import Item
from recommender.serving.foldin import all_within, fold_in_for
from tests.factories import EventFactory
from tests.recommender.serving_helpers import create_catalog, default_spec, publish_family

SPEC = default_spec(seed=3)
ALS_PARAMS = {"factors": 4, "regularization": 0.1, "alpha": 2.0, "iterations": 3}


def fitted_als(
    n_users: int = 20, n_items: int = len(SPEC.items), alpha: float = ALS_PARAMS["alpha"]
) -> AlternatingLeastSquares:
    rng = np.random.default_rng(0)
    dense = (rng.random((n_users, n_items)) < 0.3).astype(np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            **{**ALS_PARAMS, "alpha": alpha},
            random_state=0,
            num_threads=1,
            calculate_training_loss=False,
        )
        model.fit(sp.csr_matrix(dense), show_progress=False)
    return model


def recalculated(model: AlternatingLeastSquares, items: list[int]) -> np.ndarray:
    row = sp.csr_matrix(
        (np.ones(len(items), np.float32), (np.zeros(len(items)), items)),
        shape=(1, model.item_factors.shape[0]),
    )
    return np.asarray(model.recalculate_user(0, row), np.float32)


@pytest.mark.parametrize("alpha", [1.0, 2.0])  # 1: the precomputed inverse
def test_als_fold_in_is_implicits_recalculate_user(alpha):
    model = fitted_als(alpha=alpha)
    history = np.asarray([3, 7, 7, 12], np.int64)  # a repeated item counts once

    fold_in = fold_in_for("als", {**ALS_PARAMS, "alpha": alpha}, model.item_factors)
    vector = fold_in.user_vector(model.item_factors, history)

    np.testing.assert_allclose(vector, recalculated(model, [3, 7, 12]), rtol=1e-4, atol=1e-5)


def test_svd_fold_in_projects_the_history_on_the_item_factors():
    factors = np.random.default_rng(1).normal(size=(10, 3)).astype(np.float32)
    fold_in = fold_in_for("svd", {}, factors)
    np.testing.assert_allclose(
        fold_in.user_vector(factors, np.asarray([1, 4])), factors[1] + factors[4], rtol=1e-6
    )


def test_lightfm_users_are_not_folded_in():
    assert fold_in_for("lightfm", {}, np.zeros((3, 2), np.float32)) is None


@pytest.fixture
def als(db, artifact_dir) -> AlternatingLeastSquares:
    """SPEC's catalogue served by an ALS version; user-0 was trained with items 0-2."""
    create_catalog(SPEC)
    model = fitted_als(n_users=len(SPEC.users))
    publish_family(
        SPEC,
        "als",
        {
            "user_embeddings": np.asarray(model.user_factors, np.float32),
            "user_biases": np.zeros(len(SPEC.users), np.float32),
            "item_embeddings": np.asarray(model.item_factors, np.float32),
            "item_biases": np.zeros(len(SPEC.items), np.float32),
        },
        ALS_PARAMS,
        seen={SPEC.users[0]: SPEC.items[:3]},
    )
    return model


def event(user: str, item: int, minute: int) -> None:
    EventFactory(
        user_external_id=user,
        item=Item.objects.get(external_id=SPEC.items[item]),
        timestamp=datetime(2025, 1, 1, 12, minute, tzinfo=UTC),
    )


def ranked(vector: np.ndarray, item_factors: np.ndarray, seen: list[int], n: int) -> list[str]:
    scores = item_factors @ vector
    order = [i for i in np.argsort(-scores, kind="stable") if i not in seen]
    return [SPEC.items[i] for i in order[:n]]


def recommend(client, user: str) -> dict:
    response = client.get(f"/api/v1/recommendations/{user}?limit=5")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_new_user_with_events_gets_personal_als_recommendations(als, make_api_client):
    client = make_api_client()
    assert recommend(client, "newcomer")["fallback"] == "unknown_user"  # no events yet

    event("newcomer", 4, minute=1)
    event("newcomer", 9, minute=2)
    body = recommend(client, "newcomer")

    assert body["fallback"] is None
    expected = ranked(recalculated(als, [4, 9]), als.item_factors, [4, 9], 5)
    assert [i["item_id"] for i in body["items"]] == expected
    popularity = [SPEC.items[i] for i in range(len(SPEC.items)) if i not in (4, 9)][:5]
    assert expected != popularity  # the test tells folding in from popularity


def test_a_trained_user_with_a_new_event_is_folded_in_again(als, make_api_client):
    client = make_api_client()
    user = SPEC.users[0]
    stored = ranked(als.user_factors[0], als.item_factors, [0, 1, 2], 5)
    assert [i["item_id"] for i in recommend(client, user)["items"]] == stored

    event(user, 20, minute=1)  # after training: the next response folds it in
    body = recommend(client, user)

    expected = ranked(recalculated(als, [0, 1, 2, 20]), als.item_factors, [0, 1, 2, 20], 5)
    assert [i["item_id"] for i in body["items"]] == expected
    assert expected != stored


def test_events_training_already_saw_keep_the_stored_factors(als, make_api_client):
    user = SPEC.users[0]
    event(user, 1, minute=1)  # an item training saw the user with: nothing new

    body = recommend(make_api_client(), user)

    stored = ranked(als.user_factors[0], als.item_factors, [0, 1, 2], 5)
    assert [i["item_id"] for i in body["items"]] == stored


def test_all_within_tells_whether_a_history_holds_only_trained_items():
    trained = np.asarray([9, 2, 5], np.int32)
    assert all_within(np.asarray([5, 9, 5, 2], np.int64), trained)
    assert all_within(np.zeros(0, np.int64), trained)
    assert not all_within(np.asarray([5, 3], np.int64), trained)
    assert not all_within(np.asarray([10], np.int64), trained)  # beyond the largest
    assert not all_within(np.asarray([1], np.int64), trained)  # below the smallest
    assert not all_within(np.asarray([1], np.int64), np.zeros(0, np.int32))
