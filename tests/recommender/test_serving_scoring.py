"""recommender.serving.scoring: pure numpy, hand-computed cases."""

import numpy as np
import pytest

from recommender.serving import scoring

INF = -np.inf


def f32(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


def test_rank_page_orders_by_score_then_index():
    page = scoring.rank_page(f32([0.1, 0.9, 0.5, 0.9, 0.3]), offset=0, limit=3)
    assert page.indices.tolist() == [1, 3, 2]
    assert page.scores.tolist() == pytest.approx([0.9, 0.9, 0.5])
    assert page.total == 5


def test_rank_page_skips_masked_items_and_counts_only_eligible_ones():
    page = scoring.rank_page(f32([0.1, INF, 0.5, INF]), offset=0, limit=10)
    assert page.indices.tolist() == [2, 0]
    assert page.total == 2


def test_rank_page_past_the_end_is_empty():
    page = scoring.rank_page(f32([0.1, 0.2]), offset=2, limit=5)
    assert page.indices.size == 0 and page.total == 2


def test_pages_concatenate_to_the_full_ranking_even_with_many_ties():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=500).astype(np.float32)  # heavy ties
    scores[rng.choice(500, 50, replace=False)] = INF
    full = scoring.rank_page(scores, offset=0, limit=500).indices.tolist()
    paged: list[int] = []
    for offset in range(0, 500, 7):
        paged += scoring.rank_page(scores, offset=offset, limit=7).indices.tolist()
    assert paged == full
    assert len(full) == len(set(full)) == 450
    expected = sorted(np.flatnonzero(scores > INF).tolist(), key=lambda i: (-scores[i], i))
    assert full == expected


def test_score_blocks_is_dot_plus_biases_across_blocks():
    head = (f32([[1, 0], [0, 1]]), f32([0.5, 0.0]))
    tail = (f32([[1, 1]]), f32([1.0]))
    scores = scoring.score_blocks(f32([2, 3]), 0.25, [head, tail])
    assert scores.tolist() == pytest.approx([2.75, 3.25, 6.25])
    assert scores.dtype == np.float32


def test_score_blocks_reads_memory_mapped_arrays(tmp_path):
    np.save(tmp_path / "e.npy", f32([[1, 2], [3, 4]]))
    embeddings = np.load(tmp_path / "e.npy", mmap_mode="r")
    scores = scoring.score_blocks(f32([1, 1]), 0.0, [(embeddings, f32([0, 0]))])
    assert scores.tolist() == [3.0, 7.0]


def test_mask_ignores_unknown_positions_and_restrict_keeps_only_allowed():
    scores = f32([1, 2, 3, 4])
    scoring.mask(scores, np.array([1, -1, 9]))
    assert scores.tolist() == [1, INF, 3, 4]
    kept = scoring.restrict(scores, np.array([1, 3]))
    assert kept.tolist() == [INF, INF, INF, 4]


def test_category_factors_are_the_mean_of_the_category_vectors():
    features = f32([[1, 0], [0, 1], [2, 2]])
    biases = f32([0.1, 0.2, 0.3])
    embeddings, item_biases = scoring.category_factors(features, biases, [[0, 1], [2]])
    np.testing.assert_allclose(embeddings, [[0.5, 0.5], [2, 2]])
    assert item_biases.tolist() == pytest.approx([0.15, 0.3])


def test_category_factors_refuse_an_item_without_categories():
    with pytest.raises(ValueError):
        scoring.category_factors(f32([[1, 0]]), f32([0]), [[]])


def test_a_new_item_scored_by_its_categories_can_outrank_trained_items():
    trained = (f32([[0.1, 0.0], [0.0, 0.1]]), f32([0, 0]))
    new = scoring.category_factors(f32([[1, 1], [5, 5]]), f32([0, 0]), [[1]])
    scores = scoring.score_blocks(f32([1, 1]), 0.0, [trained, new])
    assert scoring.rank_page(scores, offset=0, limit=1).indices.tolist() == [2]


def test_cosine_blocks_ranks_by_angle_not_length():
    head = (f32([[10, 0], [1, 1], [0, 0]]), f32([0, 0, 0]))
    tail = (f32([[0, 3]]), f32([0]))
    norms = scoring.row_norms([head, tail])
    scores = scoring.cosine_blocks(f32([1, 0]), [head, tail], norms)
    assert scores[0] == pytest.approx(1.0)
    assert scores[1] == pytest.approx(np.sqrt(0.5))
    assert scores[2] == INF  # a zero vector has no direction
    assert scores[3] == pytest.approx(0.0)


def _similarity() -> scoring.Similarity:
    # item 0 -> {1: 1.0, 2: 0.5}; item 1 -> {}; item 2 -> {0: 2.0, 3: 1.0}
    return scoring.Similarity(
        indptr=np.asarray([0, 2, 2, 4, 4], np.int64),
        indices=np.asarray([1, 2, 0, 3], np.int32),
        data=np.asarray([1.0, 0.5, 2.0, 1.0], np.float32),
    )


def test_history_scores_sum_the_history_rows_each_item_once():
    scores = scoring.history_scores(
        _similarity(), np.asarray([2, 0, 2, 1]), 4, recency_half_life=0.0
    )
    assert scores.tolist() == [2.0, 1.0, 0.5, 1.0]


def test_history_scores_weight_by_recency_rank():
    # history (latest first): 2 then 0; n = 2, half-life 0.5 -> weights 1 and 0.5 ** (1 / 1)
    scores = scoring.history_scores(_similarity(), np.asarray([2, 0]), 4, recency_half_life=0.5)
    assert scores.tolist() == [2.0, 0.5, 0.25, 1.0]


def test_history_scores_of_an_empty_history_are_zero():
    scores = scoring.history_scores(_similarity(), np.zeros(0, np.int64), 4, recency_half_life=0)
    assert scores.tolist() == [0.0] * 4


def test_history_scores_are_the_terms_added_in_order_bit_for_bit():
    # The compiled kernels against the terms ``history_terms`` lists, added one by one in
    # float32 (what was served before): any change of order or precision shows here.
    rng = np.random.default_rng(5)
    n = 300
    dense = np.where(rng.random((n, n)) < 0.2, rng.standard_normal((n, n)), 0).astype(np.float32)
    rows, columns = np.nonzero(dense)
    similarity = scoring.Similarity(
        indptr=np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]),
        indices=columns.astype(np.int32),
        data=dense[rows, columns],
    )
    for half_life in (0.0, 0.3, 2.0):
        history = rng.integers(0, n, 120)
        items, weights = scoring.history_weights(history, half_life)
        terms = scoring.history_terms(similarity, items, weights)
        expected = np.zeros(n + 5, np.float32)
        np.add.at(expected, terms.columns, terms.values)
        scores = scoring.history_scores(similarity, history, n + 5, recency_half_life=half_life)
        assert scores.dtype == np.float32
        assert scores.tobytes() == expected.tobytes()


def test_history_scores_refuse_an_item_outside_the_matrix():
    with pytest.raises(IndexError):
        scoring.history_scores(_similarity(), np.asarray([1, 4]), 4, recency_half_life=0)
    with pytest.raises(ValueError):
        scoring.history_scores(_similarity(), np.asarray([1]), 3, recency_half_life=0)


@pytest.mark.parametrize(
    ("indptr", "indices"),
    [
        ([0, 2, 2, 4, 4], [1, 2, 0, 4]),  # an item beyond the last
        ([0, 2, 2, 4, 5], [1, 2, 0, 3]),  # indptr past the entries
        ([0, 2, 1, 4, 4], [1, 2, 0, 3]),  # indptr going back
    ],
)
def test_similarity_refuses_arrays_that_are_no_square_csr_matrix(indptr, indices):
    with pytest.raises(ValueError):
        scoring.Similarity(
            indptr=np.asarray(indptr, np.int64),
            indices=np.asarray(indices, np.int32),
            data=np.ones(len(indices), np.float32),
        )


@pytest.mark.parametrize(
    ("n", "k"),
    [(5, 1), (5, 3), (63, 20), (64, 3), (65, 20), (640, 1), (640, 20), (640, 200),
     (10_001, 1), (10_001, 20), (10_001, 200)],
)  # fmt: skip
def test_top_candidates_are_every_score_at_least_the_kth_largest(n, k):
    rng = np.random.default_rng(n * 1000 + k)
    for case in range(4):
        # Few distinct values (many ties), masked runs, or all distinct.
        values = rng.integers(0, 5, n) if case % 2 else rng.standard_normal(n)
        scores = values.astype(np.float32)
        if case >= 2:
            scores[rng.random(n) < 0.9] = scoring.MASKED
        kth = np.sort(scores)[::-1][k - 1]
        expected = np.flatnonzero(scores >= kth)
        np.testing.assert_array_equal(scoring.top_candidates(scores, k), expected)


def test_top_candidates_when_only_the_last_chunk_holds_scores():
    scores = np.full(64 * 50 + 7, scoring.MASKED, dtype=np.float32)
    scores[-3:] = [1.0, 3.0, 2.0]
    np.testing.assert_array_equal(
        scoring.top_candidates(scores, 2), [scores.size - 2, scores.size - 1]
    )
