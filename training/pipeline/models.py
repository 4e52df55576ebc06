"""The popularity baseline every candidate is evaluated next to. The families' own
models score through ``training.families.fit.FamilyScorer``."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class PopularityScorer:
    """Every user gets the same scores: each item's total weight in train."""

    def __init__(self, train: sp.csr_matrix) -> None:
        self.popularity: np.ndarray = np.asarray(train.sum(axis=0), dtype=np.float32).ravel()
        self.n_items = int(self.popularity.size)

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self.popularity, (len(users), 1))
