import numpy as np
import pytest
import scipy.sparse as sp

from training.pipeline.matrices import IdMap, feature_matrix
from training.pipeline.models import (
    EmbeddingScorer,
    LightFMParams,
    PopularityScorer,
    fit_lightfm,
)


def _train() -> sp.csr_matrix:
    rng = np.random.default_rng(0)
    dense = (rng.random((20, 15)) < 0.3) * rng.integers(1, 4, size=(20, 15))
    return sp.csr_matrix(dense.astype(np.float32))


def test_popularity_scores_every_user_with_train_weight_per_item():
    train = sp.csr_matrix(np.array([[1, 0, 3], [2, 0, 0]], dtype=np.float32))
    scores = PopularityScorer(train).score(np.array([1, 0, 1]))
    assert scores.tolist() == [[3, 0, 3]] * 3
    scores[0, 0] = -1  # callers may write into the result
    assert PopularityScorer(train).popularity.tolist() == [3, 0, 3]


def test_embedding_scorer_is_dot_product_plus_biases():
    scorer = EmbeddingScorer(
        user_embeddings=np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32),
        user_biases=np.array([0.5, -1.0], dtype=np.float32),
        item_embeddings=np.array([[1.0, 1.0], [2.0, 0.0], [0.0, 3.0]], dtype=np.float32),
        item_biases=np.array([0.0, 0.1, 0.2], dtype=np.float32),
    )
    np.testing.assert_allclose(scorer.score(np.array([1, 0])), [[1.0, -0.9, 5.2], [1.5, 2.6, 0.7]])
    assert scorer.n_items == 3


def test_embedding_scorer_rejects_mismatched_dimensions():
    with pytest.raises(ValueError, match="dimensions"):
        EmbeddingScorer(
            np.zeros((2, 3), np.float32),
            np.zeros(2, np.float32),
            np.zeros((4, 2), np.float32),
            np.zeros(4, np.float32),
        )


def test_lightfm_scorer_equals_model_predict_with_item_features():
    train = _train()
    items = IdMap([f"i{i}" for i in range(15)])
    features = feature_matrix(items, np.arange(15), np.array([f"cat:{i % 4}" for i in range(15)]))
    fitted = fit_lightfm(
        train,
        LightFMParams(no_components=6, epochs=3, random_state=1, item_alpha=1e-4),
        item_features=features.matrix,
    )
    users = np.array([3, 0, 19])
    ours = fitted.scorer().score(users)

    user_ids = np.repeat(users, 15)
    item_ids = np.tile(np.arange(15), len(users))
    expected = fitted.model.predict(user_ids, item_ids, item_features=features.matrix).reshape(
        len(users), 15
    )
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    assert fitted.model.item_embeddings.shape == (15 + 4, 6)


def test_fit_reports_progress_after_every_epoch():
    calls: list[tuple[int, int]] = []
    fit_lightfm(
        _train(), LightFMParams(no_components=4, epochs=3), on_epoch=lambda *a: calls.append(a)
    )
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_a_raising_callback_stops_the_fit():
    class Cancelled(Exception):
        pass

    seen: list[int] = []

    def cancel_after_two(done: int, total: int) -> None:
        seen.append(done)
        if done == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        fit_lightfm(_train(), LightFMParams(no_components=4, epochs=10), on_epoch=cancel_after_two)
    assert seen == [1, 2]


def test_fit_is_reproducible_with_a_random_state():
    params = LightFMParams(no_components=4, epochs=2, random_state=5)
    a = fit_lightfm(_train(), params).scorer().score(np.arange(3))
    b = fit_lightfm(_train(), params).scorer().score(np.arange(3))
    np.testing.assert_array_equal(a, b)


def test_warp_kos_fits_without_sample_weights():
    fitted = fit_lightfm(_train(), LightFMParams(no_components=4, epochs=1, loss="warp-kos"))
    assert fitted.scorer().score(np.array([0])).shape == (1, 15)


@pytest.mark.parametrize(
    "kwargs",
    [{"loss": "hinge"}, {"epochs": 0}, {"no_components": 0}, {"learning_rate": 0.0}],
)
def test_params_reject_invalid_values(kwargs):
    with pytest.raises(ValueError):
        LightFMParams(**kwargs)
