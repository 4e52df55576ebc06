"""PureSVD (Cremonesi, Koren, Turrin 2010): the interaction matrix's truncated SVD
``X ~ U S V^T`` through scikit-learn's randomised ``TruncatedSVD``; a user's scores are
``x_u V V^T``, i.e. user factors ``U S`` and item factors ``V``. ``factors`` is capped
at ``min(users, items) - 1`` (what TruncatedSVD can compute)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.decomposition import TruncatedSVD

from training.families.base import FactorModel, FitContext


def fit(train: sp.csr_matrix, params: dict[str, Any], context: FitContext) -> FactorModel:
    x = sp.csr_matrix(train, dtype=np.float32)
    factors = max(1, min(int(params["factors"]), min(x.shape) - 1))
    svd = TruncatedSVD(
        n_components=factors, n_iter=int(params["n_iter"]), random_state=context.random_seed
    )
    users = np.ascontiguousarray(svd.fit_transform(x), dtype=np.float32)
    items = np.ascontiguousarray(svd.components_.T, dtype=np.float32)
    context.progress(1, 1)
    return FactorModel(
        users, items, np.zeros(len(users), np.float32), np.zeros(len(items), np.float32)
    )
