"""The model families' pure fit functions (training/families/) and the scoring by kind
(recommender/family_scoring.py): small hand-checkable cases, no database."""

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.families import FAMILIES
from recommender.family_scoring import factor_scores, item_item_scores, recency_weighted
from training.families import als, ease, itemknn, popularity, svd
from training.families.base import (
    UNKNOWN_ITEM_SCORE,
    FactorModel,
    FamilyLimitExceeded,
    FitContext,
    ItemItemModel,
    ScoresModel,
    model_from_artifact,
    top_k_per_row,
)
from training.families.fit import FamilyScorer, family_scorer, fit_family
from training.pipeline.metrics import evaluate


def params(family: str, **changes) -> dict:
    return {"family": family, **FAMILIES[family].defaults(), **changes}


def groups(n_users: int = 60, n_items: int = 30, seed: int = 0) -> sp.csr_matrix:
    """Three taste groups: users of group g mostly take items of group g."""
    rng = np.random.default_rng(seed)
    same = (np.arange(n_users)[:, None] % 3) == (np.arange(n_items)[None, :] % 3)
    dense = rng.random((n_users, n_items)) < np.where(same, 0.5, 0.02)
    return sp.csr_matrix(dense.astype(np.float32))


# --- scoring by kind ---------------------------------------------------------------------


def test_factor_scores_are_dot_products_plus_biases():
    scores = factor_scores(
        np.array([[1.0, 0.0], [0.0, 2.0]], np.float32),
        np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 3.0]], np.float32),
        np.array([0.5, -1.0], np.float32),
        np.array([0.0, 0.1, 0.2], np.float32),
    )
    np.testing.assert_allclose(scores, [[1.5, 2.6, 0.7], [1.0, -0.9, 5.2]])


def test_item_item_scores_are_the_history_times_the_matrix():
    history = sp.csr_matrix(np.array([[1, 0, 2], [0, 1, 0]], np.float32))
    similarity = sp.csr_matrix(np.array([[0, 1, 0], [0.5, 0, 0.5], [1, 0, 0]], np.float32))
    np.testing.assert_allclose(item_item_scores(history, similarity), [[2, 1, 0], [0.5, 0, 0.5]])


def test_recency_weighting_halves_every_half_life_share_of_the_history():
    history = sp.csr_matrix(np.array([[1, 1, 1, 1]], np.float32))
    last_seen = sp.csr_matrix(np.array([[40, 10, 30, 20]], np.float64))
    weighted = recency_weighted(history, last_seen, 0.25)  # half-life: 1 of 4 events
    np.testing.assert_allclose(weighted.toarray(), [[1, 0.125, 0.5, 0.25]])
    assert recency_weighted(history, last_seen, 0.0) is history


def test_recency_weighting_refuses_a_different_pattern():
    history = sp.csr_matrix(np.array([[1, 0]], np.float32))
    with pytest.raises(ValueError, match="sparsity pattern"):
        recency_weighted(history, sp.csr_matrix(np.array([[0, 5.0]])), 0.3)


def test_top_k_per_row_keeps_the_largest_and_breaks_ties_by_column():
    matrix = sp.csr_matrix(np.array([[3, 1, 3, 2], [0, 0, 1, 0]], np.float32))
    np.testing.assert_array_equal(top_k_per_row(matrix, 2).toarray(), [[3, 0, 3, 0], [0, 0, 1, 0]])


# --- fits ----------------------------------------------------------------------------------


def test_ease_matches_the_closed_form_before_truncation():
    train = groups(n_users=40, n_items=12)
    fitted = ease.fit(train, params("ease", top_k=12), FitContext())
    x = train.toarray().astype(np.float64)
    inverse = np.linalg.inv(x.T @ x + 300.0 * np.eye(12))
    expected = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(fitted.similarity.toarray(), expected, rtol=1e-3, atol=1e-6)


def test_ease_keeps_the_top_k_weights_of_each_row_by_magnitude():
    train = groups()
    full = ease.fit(train, params("ease", top_k=30), FitContext()).similarity.toarray()
    kept = ease.fit(train, params("ease", top_k=3), FitContext()).similarity
    assert np.diff(kept.indptr).max() <= 3
    assert not kept.diagonal().any()
    for row in range(30):
        magnitudes = np.sort(np.abs(full[row]))[::-1]
        assert np.allclose(np.sort(np.abs(kept[row].data))[::-1], magnitudes[:3], rtol=1e-4)


def test_ease_refuses_more_items_than_its_limit_naming_it():
    with pytest.raises(FamilyLimitExceeded, match="RECSITE_EASE_MAX_ITEMS = 20"):
        ease.fit(groups(n_items=30), params("ease"), FitContext(ease_max_items=20))


@pytest.mark.parametrize("similarity", ["cosine", "bm25"])
def test_itemknn_neighbours_are_the_same_group_and_never_the_item_itself(similarity):
    fitted = itemknn.fit(
        groups(), params("itemknn", neighbours=5, similarity=similarity), FitContext()
    )
    sim = fitted.similarity.tocoo()
    assert np.diff(fitted.similarity.indptr).max() <= 5
    assert (sim.row != sim.col).all()
    assert ((sim.row % 3) == (sim.col % 3)).mean() > 0.9


def test_itemknn_cosine_equals_the_dense_cosine():
    train = groups(n_users=30, n_items=9)
    fitted = itemknn.fit(train, params("itemknn", neighbours=9), FitContext())
    x = train.toarray()
    norms = np.linalg.norm(x, axis=0)
    cosine = (x.T @ x) / np.outer(norms, norms)
    np.fill_diagonal(cosine, 0.0)
    np.testing.assert_allclose(fitted.similarity.toarray(), cosine, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("binary", [False, True])  # binary: many equal products
@pytest.mark.parametrize("k", [1, 3, 7])
def test_itemknn_neighbours_are_the_top_k_of_the_dense_products(k, binary):
    """The lower column first among equal products, as ``top_k_per_row``."""
    rng = np.random.default_rng(k)
    taken = rng.random((40, 12)) < 0.3
    dense = np.where(taken, 1.0 if binary else rng.random((40, 12)), 0.0)
    dense[:, 5] = 0.0  # an item nobody took: no neighbours, nobody's neighbour
    products = dense.T @ dense
    np.fill_diagonal(products, 0.0)
    expected = np.zeros_like(products)
    for row, values in enumerate(products):
        best = np.argsort(-values, kind="stable")[:k]
        expected[row, best] = values[best]
    got = itemknn.neighbours(sp.csr_matrix(dense), k)
    assert got.dtype == np.float32 and got.has_sorted_indices
    np.testing.assert_allclose(got.toarray(), expected, rtol=1e-6)


def test_itemknn_handles_a_hundred_thousand_items_sparsely():
    rng = np.random.default_rng(1)
    n_users, n_items, nnz = 2_000, 100_000, 60_000
    train = sp.csr_matrix(
        (np.ones(nnz, np.float32), (rng.integers(0, n_users, nnz), rng.integers(0, n_items, nnz))),
        shape=(n_users, n_items),
    )
    fitted = itemknn.fit(train, params("itemknn", neighbours=20), FitContext())
    assert fitted.similarity.shape == (n_items, n_items)
    assert np.diff(fitted.similarity.indptr).max() <= 20


def test_als_and_svd_give_factors_that_rank_the_users_group_first():
    train = groups()
    for fitted in (
        als.fit(train, params("als", factors=8, iterations=10), FitContext(random_seed=3)),
        svd.fit(train, params("svd", factors=3), FitContext(random_seed=3)),
    ):
        assert fitted.user_factors.shape[0] == 60 and fitted.item_factors.shape[0] == 30
        scores = factor_scores(fitted.user_factors, fitted.item_factors)
        best = scores.argmax(axis=1)
        assert ((best % 3) == (np.arange(60) % 3)).mean() > 0.9


def test_svd_caps_its_factors_at_what_the_matrix_allows():
    fitted = svd.fit(groups(n_users=10, n_items=6), params("svd", factors=64), FitContext())
    assert fitted.item_factors.shape == (6, 5)


def test_popularity_decays_by_age_of_each_pair():
    train = sp.csr_matrix(np.array([[1, 1], [1, 0]], np.float32))
    day = popularity.DAY
    last_seen = sp.csr_matrix(np.array([[10 * day, 12 * day], [12 * day, 0]], np.float64))
    flat = popularity.fit(train, params("popularity"), FitContext())
    np.testing.assert_allclose(flat.scores, [2, 1])
    decayed = popularity.fit(
        train, params("popularity", half_life_days=2.0), FitContext(last_seen=last_seen)
    )
    np.testing.assert_allclose(decayed.scores, [1.5, 1])


def test_fit_family_reports_progress_and_dispatches_by_name():
    calls: list[tuple[int, int]] = []
    fitted = fit_family(
        groups(), params("itemknn"), FitContext(on_progress=lambda *a: calls.append(a))
    )
    assert isinstance(fitted, ItemItemModel) and calls == [(1, 1)]


@pytest.mark.parametrize(
    ("family", "overrides"),
    [("ease", {}), ("itemknn", {}), ("als", {}), ("svd", {"factors": 3})],  # 3 taste groups
)
def test_every_family_beats_popularity_on_the_taste_groups(family, overrides):
    train, test = groups(seed=1), groups(seed=2)
    test = sp.csr_matrix(np.where(train.toarray() > 0, 0, test.toarray()))
    hp = params(family, **overrides)
    fitted = fit_family(train, hp, FitContext(random_seed=1))
    ours = evaluate(family_scorer(fitted, hp, history=train, last_seen=None), train, test, k=5)
    flat = fit_family(train, params("popularity"), FitContext())
    baseline = evaluate(FamilyScorer(flat, history=train), train, test, k=5)
    assert ours["precision@5"] > baseline["precision@5"] * 1.5, (ours, baseline)


# --- saved models in another run's order ----------------------------------------------------


def test_models_follow_another_runs_users_and_items():
    users, items = np.array([1, -1]), np.array([2, -1, 0])
    factors = FactorModel(
        np.array([[1.0], [2.0]], np.float32),
        np.array([[1.0], [3.0], [5.0]], np.float32),
        np.zeros(2, np.float32),
        np.array([0.1, 0.2, 0.3], np.float32),
    ).reindexed(users, items)
    np.testing.assert_allclose(factors.user_factors, [[2.0], [0.0]])
    np.testing.assert_allclose(factors.item_factors, [[5.0], [0.0], [1.0]])
    assert factors.item_biases[1] == UNKNOWN_ITEM_SCORE
    similarity = sp.csr_matrix(np.array([[0, 1, 2], [3, 0, 4], [5, 6, 0]], np.float32))
    moved = ItemItemModel(similarity).reindexed(users, items).similarity.toarray()
    np.testing.assert_allclose(moved, [[0, 0, 5], [0, 0, 0], [2, 0, 0]])
    scores = ScoresModel(np.array([1.0, 2.0, 3.0], np.float32)).reindexed(users, items).scores
    np.testing.assert_allclose(scores, [3.0, UNKNOWN_ITEM_SCORE, 1.0])


@pytest.mark.parametrize("family", ["ease", "als", "popularity"])
def test_a_model_comes_back_from_its_artifact_arrays(family):
    hp = params(family)
    fitted = fit_family(groups(), hp, FitContext())
    back = model_from_artifact(FAMILIES[family].kind, fitted.artifact_arrays())
    for name, array in fitted.artifact_arrays().items():
        np.testing.assert_array_equal(back.artifact_arrays()[name], array)
