"""Fold-in: a user vector for a factor model from the user's current history, computed
at request time, so a user unknown at training (or whose history changed since) gets
personal recommendations from the stored item factors. Plain numpy, no Django.

- ``als``: the least-squares solve implicit's ``recalculate_user`` makes, against the
  item factors ``Y`` with the model's ``regularization`` and ``alpha``:
  ``x = (YtY + reg I + sum_i (c_i - 1) y_i y_i^T)^-1 sum_i c_i y_i`` with confidence
  ``c_i = alpha x w_i`` (implicit scales the interaction matrix by ``alpha``). ``YtY``
  (d x d) is computed once per load; a request adds its history's ``d x d`` terms and
  solves one small system.
- ``svd`` (PureSVD): a user's factors are their interaction row times the item factors
  (``U S = X V``), so the fold-in is exact and costs one sum.

Each history item counts with weight 1: the request reads the keys of the user's recent
items, not the event weights (training summed them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class FoldIn:
    """What folding a history into ``family``'s item factors needs, derived once per
    load."""

    family: str
    gram: np.ndarray | None  # als: YtY + regularization x I (float64, d x d)
    alpha: float = 1.0
    # als with alpha 1 (the default): a history adds nothing to the system, so its
    # inverse is computed once and a request costs one matrix-vector product.
    inverse: np.ndarray | None = None

    def user_vector(self, item_factors: np.ndarray, history: np.ndarray) -> np.ndarray:
        """The user's factors (float32) from ``history`` (item positions into
        ``item_factors``; duplicates count once)."""
        items = np.unique(np.asarray(history, dtype=np.int64))
        factors = np.asarray(item_factors[items], dtype=np.float64)
        if self.family == "svd":
            return factors.sum(axis=0).astype(np.float32)
        if self.inverse is not None:
            return (self.inverse @ factors.sum(axis=0)).astype(np.float32)
        confidence = self.alpha
        system = self.gram + (confidence - 1.0) * (factors.T @ factors)
        target = confidence * factors.sum(axis=0)
        return np.linalg.solve(system, target).astype(np.float32)


def all_within(values: np.ndarray, allowed: np.ndarray) -> bool:
    """Whether every one of ``values`` is in ``allowed`` (the user's trained items: is
    there anything to fold in?). Sorting the few ``allowed`` and a binary search per value
    cost a quarter of ``np.isin``, asked on every request of a known user with a history."""
    if values.size == 0:
        return True
    if allowed.size == 0:
        return False
    ordered = np.sort(allowed)
    at = np.minimum(np.searchsorted(ordered, values), ordered.size - 1)
    return bool((ordered[at] == values).all())


def fold_in_for(family: str, params: dict[str, Any], item_factors: np.ndarray) -> FoldIn | None:
    """How ``family`` folds users in (None: it does not; lightfm's users without factors
    are served popularity, as before)."""
    if family == "svd":
        return FoldIn(family, None)
    if family != "als":
        return None
    factors = np.asarray(item_factors, dtype=np.float64)
    gram = factors.T @ factors
    gram[np.diag_indices_from(gram)] += float(params.get("regularization", 0.0))
    alpha = float(params.get("alpha", 1.0))
    inverse = np.linalg.inv(gram) if alpha == 1.0 else None
    return FoldIn(family, gram, alpha=alpha, inverse=inverse)
