"""Popularity: each item's total interaction weight, optionally decayed by age: a
(user, item) pair's weight halves every ``half_life_days`` before the newest event of
the training data (age taken from the pair's latest event)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from training.families.base import FitContext, ScoresModel

DAY = 86_400.0


def fit(train: sp.csr_matrix, params: dict[str, Any], context: FitContext) -> ScoresModel:
    weights = sp.csr_matrix(train, dtype=np.float64)
    half_life = float(params["half_life_days"])
    if half_life > 0 and weights.nnz:
        if context.last_seen is None:
            raise ValueError("popularity decay needs each pair's latest timestamp")
        seen = sp.csr_matrix(context.last_seen, dtype=np.float64)
        if not np.array_equal(seen.indices, weights.indices):
            raise ValueError("last_seen must have the train matrix's sparsity pattern")
        age_days = (seen.data.max() - seen.data) / DAY
        weights = weights.copy()
        weights.data = weights.data * np.power(0.5, age_days / half_life)
    context.progress(1, 1)
    return ScoresModel(np.asarray(weights.sum(axis=0), dtype=np.float32).ravel())
