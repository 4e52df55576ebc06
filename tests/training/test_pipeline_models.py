import numpy as np
import scipy.sparse as sp

from training.pipeline.models import PopularityScorer


def test_popularity_scores_every_user_with_train_weight_per_item():
    train = sp.csr_matrix(np.array([[1, 0, 3], [2, 0, 0]], dtype=np.float32))
    scores = PopularityScorer(train).score(np.array([1, 0, 1]))
    assert scores.tolist() == [[3, 0, 3]] * 3
    scores[0, 0] = -1  # callers may write into the result
    assert PopularityScorer(train).popularity.tolist() == [3, 0, 3]
