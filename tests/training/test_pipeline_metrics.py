import math

import numpy as np
import pytest
import scipy.sparse as sp
from lightfm import evaluation as lfm_eval

from recommender.families import FAMILIES
from recommender.metric_names import KEY_METRICS, metric_key
from training.families import lightfm
from training.families.base import FitContext
from training.families.fit import FamilyScorer
from training.pipeline.metrics import (
    auc,
    coverage,
    evaluate,
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
    top_k,
)
from training.pipeline.models import PopularityScorer


def csr(dense) -> sp.csr_matrix:
    return sp.csr_matrix(np.array(dense, dtype=np.float32))


# Two users, five items.
# user 0: item 0 in train; items 2 and 3 in test. Top-3 without item 0: [1, 2, 4].
# user 1: nothing in train; item 4 in test. Top-3: [4, 3, 2].
SCORES = np.array([[0.9, 0.8, 0.7, 0.1, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5]])
TRAIN = csr([[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
TEST = csr([[0, 0, 1, 1, 0], [0, 0, 0, 0, 1]])


class ArrayScorer:
    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores
        self.n_items = scores.shape[1]

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.scores[users].copy()


def test_top_k_excludes_train_items_and_orders_best_first():
    assert top_k(SCORES.copy(), 3, TRAIN).tolist() == [[1, 2, 4], [4, 3, 2]]


def test_top_k_pads_with_minus_one_when_too_few_items_are_eligible():
    scores = np.array([[3.0, 2.0, 1.0]])
    assert top_k(scores, 2, csr([[1, 0, 1]])).tolist() == [[1, -1]]
    assert top_k(np.array([[1.0, 2.0]]), 4).tolist() == [[1, 0, -1, -1]]


def test_precision_divides_by_k_like_lightfm():
    top = top_k(SCORES.copy(), 3, TRAIN)
    np.testing.assert_allclose(precision_at_k(top, TEST), [1 / 3, 1 / 3])


def test_recall_divides_by_number_of_test_items():
    top = top_k(SCORES.copy(), 3, TRAIN)
    np.testing.assert_allclose(recall_at_k(top, TEST), [1 / 2, 1.0])


def test_ndcg_hand_computed():
    top = top_k(SCORES.copy(), 3, TRAIN)
    # user 0: one hit at rank 2 -> 1/log2(3); ideal: two hits at ranks 1, 2
    user0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    np.testing.assert_allclose(ndcg_at_k(top, TEST), [user0, 1.0])


def test_map_hand_computed():
    top = top_k(SCORES.copy(), 3, TRAIN)
    # user 0: precision@2 = 1/2 at the only hit, over min(2 relevant, 3) -> 0.25
    np.testing.assert_allclose(map_at_k(top, TEST), [0.25, 1.0])


def test_map_counts_every_hit():
    top = np.array([[0, 1, 2]])
    truth = csr([[1, 0, 1]])
    # hits at ranks 1 and 3: (1/1 + 2/3) / 2
    np.testing.assert_allclose(map_at_k(top, truth), [(1 + 2 / 3) / 2])


def test_coverage_counts_distinct_recommended_items():
    top = top_k(SCORES.copy(), 3, TRAIN)
    assert coverage(top, 5) == pytest.approx(0.8)
    assert coverage(np.array([[0, -1]]), 4) == pytest.approx(0.25)


def test_auc_hand_computed_leaving_train_items_out():
    # user 0 over items 1..4: positives 2 (0.7), 3 (0.1); negatives 1 (0.8), 4 (0.5)
    # -> 1 winning pair of 4. user 1: its positive outscores all four negatives.
    np.testing.assert_allclose(auc(SCORES.copy(), TEST, TRAIN), [0.25, 1.0])


def test_auc_counts_ties_as_half():
    np.testing.assert_allclose(auc(np.array([[1.0, 1.0, 1.0]]), csr([[1, 0, 0]])), [0.5])
    np.testing.assert_allclose(auc(np.array([[2.0, 1.0, 1.0]]), csr([[0, 1, 0]])), [0.25])


def test_auc_is_half_without_negatives():
    np.testing.assert_allclose(auc(np.array([[1.0, 2.0]]), csr([[1, 0]]), csr([[0, 1]])), [0.5])


def test_evaluate_averages_over_users_with_test_interactions_in_batches():
    scores = np.vstack([SCORES, [[5.0, 4.0, 3.0, 2.0, 1.0]]])  # user 2 has no test row
    train = sp.vstack([TRAIN, csr([[0, 0, 0, 0, 0]])]).tocsr()
    test = sp.vstack([TEST, csr([[0, 0, 0, 0, 0]])]).tocsr()
    result = evaluate(ArrayScorer(scores), train, test, k=3, batch_users=1)
    assert result["users"] == 2
    assert result["precision@3"] == pytest.approx(1 / 3)
    assert result["recall@3"] == pytest.approx(0.75)
    assert result["map@3"] == pytest.approx(0.625)
    assert result["auc"] == pytest.approx(0.625)
    assert result["coverage@3"] == pytest.approx(0.8)
    assert result["ndcg@3"] == pytest.approx(((1 / math.log2(3)) / (1 + 1 / math.log2(3)) + 1) / 2)


class CountingScorer(ArrayScorer):
    def __init__(self, scores: np.ndarray) -> None:
        super().__init__(scores)
        self.scored: list[int] = []

    def score(self, users: np.ndarray) -> np.ndarray:
        self.scored.extend(users.tolist())
        return super().score(users)


def test_evaluate_scores_a_fixed_sample_of_at_most_max_users():
    rng = np.random.default_rng(3)
    n_users, n_items = 500, 30
    scores = rng.random((n_users, n_items))
    test = sp.csr_matrix((rng.random((n_users, n_items)) < 0.1).astype(np.float32))
    train = sp.csr_matrix((n_users, n_items), dtype=np.float32)
    everyone = evaluate(ArrayScorer(scores), train, test, k=5)
    first, second = CountingScorer(scores), CountingScorer(scores)
    sampled = evaluate(first, train, test, k=5, max_users=100)
    evaluate(second, train, test, k=5, max_users=100)
    assert sampled["users"] == 100 and len(first.scored) == 100
    assert first.scored == second.scored  # the same users every time: sides compare
    assert set(first.scored) <= set(np.flatnonzero(np.diff(test.indptr) > 0).tolist())
    # an unbiased estimate: random scores put precision near the density for both
    assert sampled["precision@5"] == pytest.approx(everyone["precision@5"], abs=0.05)
    assert evaluate(ArrayScorer(scores), train, test, k=5, max_users=10_000) == everyone
    with pytest.raises(ValueError, match="max_users"):
        evaluate(ArrayScorer(scores), train, test, k=5, max_users=0)


def test_evaluate_matches_lightfm_evaluation_for_a_fitted_model():
    rng = np.random.default_rng(7)
    n_users, n_items = 40, 60
    # three taste groups, so the model learns something and the metrics are far from 0
    same_group = (np.arange(n_users)[:, None] % 3) == (np.arange(n_items)[None, :] % 3)
    dense = (rng.random((n_users, n_items)) < np.where(same_group, 0.4, 0.03)).astype(np.float32)
    holdout = (rng.random((n_users, n_items)) < 0.25) & (dense > 0)
    train = sp.csr_matrix(np.where(holdout, 0, dense))
    test = sp.csr_matrix(np.where(holdout, dense, 0))
    params = {**FAMILIES["lightfm"].defaults(), "no_components": 8, "epochs": 30}
    params |= {"learning_rate": 0.1, "item_alpha": 0.0, "user_alpha": 0.0}
    context = FitContext(random_seed=3)
    model = lightfm.fit_model(train, params, context)
    scorer = FamilyScorer(lightfm.factor_model(model, context), history=train)

    ours = evaluate(scorer, train, test, k=5, batch_users=7)

    expected_precision = lfm_eval.precision_at_k(model, test, train, k=5).mean()
    expected_recall = lfm_eval.recall_at_k(model, test, train, k=5).mean()
    expected_auc = lfm_eval.auc_score(model, test, train).mean()
    assert ours["users"] == (np.diff(test.indptr) > 0).sum()
    assert ours["precision@5"] > 0.1, ours
    assert ours["precision@5"] == pytest.approx(expected_precision, abs=1e-6)
    assert ours["recall@5"] == pytest.approx(expected_recall, abs=1e-6)
    assert ours["auc"] == pytest.approx(expected_auc, abs=1e-5)


def test_every_key_metric_a_recommender_may_pick_is_computed():
    train = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32))
    test = sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 1]], dtype=np.float32))
    result = evaluate(PopularityScorer(train), train, test, k=2)
    assert {metric_key(name, 2) for name in KEY_METRICS} <= set(result)
