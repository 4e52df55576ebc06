"""The lightfm family (training/families/lightfm.py): LightFM behind the families' fit
interface."""

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.families import FAMILIES
from training.families import lightfm
from training.families.base import FitContext
from training.families.fit import FamilyScorer
from training.pipeline.matrices import IdMap, feature_matrix

DEFAULTS = FAMILIES["lightfm"].defaults()


def _train() -> sp.csr_matrix:
    rng = np.random.default_rng(0)
    dense = (rng.random((20, 15)) < 0.3) * rng.integers(1, 4, size=(20, 15))
    return sp.csr_matrix(dense.astype(np.float32))


def params(**changes) -> dict:
    return {**DEFAULTS, **changes}


def test_the_scorer_equals_model_predict_with_item_features():
    train = _train()
    items = IdMap([f"i{i}" for i in range(15)])
    features = feature_matrix(items, np.arange(15), np.array([f"cat:{i % 4}" for i in range(15)]))
    context = FitContext(random_seed=1, item_features=features.matrix)
    model = lightfm.fit_model(train, params(no_components=6, epochs=3, item_alpha=1e-4), context)
    users = np.array([3, 0, 19])
    ours = FamilyScorer(lightfm.factor_model(model, context), history=train).score(users)

    user_ids = np.repeat(users, 15)
    item_ids = np.tile(np.arange(15), len(users))
    expected = model.predict(user_ids, item_ids, item_features=features.matrix).reshape(
        len(users), 15
    )
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)
    arrays = lightfm.factor_model(model, context).artifact_arrays()
    assert arrays["item_feature_embeddings"].shape == (15 + 4, 6)


def test_fit_reports_progress_after_every_epoch():
    calls: list[tuple[int, int]] = []
    context = FitContext(on_progress=lambda *a: calls.append(a))
    lightfm.fit(_train(), params(no_components=4, epochs=3), context)
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
        lightfm.fit(
            _train(), params(no_components=4, epochs=10), FitContext(on_progress=cancel_after_two)
        )
    assert seen == [1, 2]


def test_fit_is_reproducible_with_a_random_seed():
    context = FitContext(random_seed=5)
    a = lightfm.fit(_train(), params(no_components=4, epochs=2), context)
    b = lightfm.fit(_train(), params(no_components=4, epochs=2), context)
    np.testing.assert_array_equal(a.user_factors, b.user_factors)


def test_warp_kos_fits_without_sample_weights():
    fitted = lightfm.fit(_train(), params(no_components=4, epochs=1, loss="warp-kos"), FitContext())
    assert fitted.item_factors.shape == (15, 4)
