"""ALS for implicit feedback (Hu, Koren, Volinsky 2008) through the ``implicit``
library (CPU, conjugate gradient): confidence ``1 + alpha x weight``. Sparse in, so it
handles 100k+ items; the factors are what the artifact holds (no biases)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from training.families.base import FactorModel, FitContext


def fit(train: sp.csr_matrix, params: dict[str, Any], context: FitContext) -> FactorModel:
    iterations = int(params["iterations"])
    user_items = sp.csr_matrix(train, dtype=np.float32)

    def on_iteration(iteration: int, elapsed: float, loss: float) -> None:
        context.progress(iteration + 1, iterations)

    # implicit's own threads do the work; BLAS threads inside them only contend (it warns
    # at construction when BLAS may use more than one).
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=int(params["factors"]),
            regularization=float(params["regularization"]),
            alpha=float(params["alpha"]),
            iterations=iterations,
            random_state=context.random_seed,
            num_threads=context.num_threads,
        )
        model.fit(user_items, show_progress=False, callback=on_iteration)
    users = np.ascontiguousarray(model.user_factors, dtype=np.float32)
    items = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    return FactorModel(
        users, items, np.zeros(len(users), np.float32), np.zeros(len(items), np.float32)
    )
