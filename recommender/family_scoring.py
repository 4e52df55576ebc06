"""How each kind of model family scores items for a batch of users: plain numpy / scipy,
no Django. Training's offline evaluation uses it today; serving will use the same
functions, so a family is judged offline exactly as it is served.

- factor families (lightfm, als, svd): ``user factors . item factors + biases``;
- item-item families (ease, itemknn): the user's history row (interaction weights, or 1
  each with ``binary``; optionally weighted by recency) times the top-k item-item
  matrix, whose row ``i`` holds what history item ``i`` adds to each item it
  recommends;
- score families (popularity): one score per item, the same for every user."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def factor_scores(
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    user_biases: np.ndarray | None = None,
    item_biases: np.ndarray | None = None,
) -> np.ndarray:
    """``(users, items)`` float32: ``user_factors @ item_factors.T`` plus the biases."""
    scores = np.asarray(user_factors @ item_factors.T, dtype=np.float32)
    if user_biases is not None:
        scores += np.asarray(user_biases, dtype=np.float32)[:, None]
    if item_biases is not None:
        scores += np.asarray(item_biases, dtype=np.float32)[None, :]
    return scores


def item_item_scores(history: sp.csr_matrix, similarity: sp.csr_matrix) -> np.ndarray:
    """``(users, items)`` float32: each history row times the item-item matrix (sparse
    product, then dense: one row per user of the batch)."""
    if history.shape[1] != similarity.shape[0]:
        raise ValueError("history and similarity disagree on the number of items")
    return np.asarray((history @ similarity).toarray(), dtype=np.float32)


def binarised(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """1 for every stored entry (item-item families with ``binary``: an interaction
    counts once, whatever its weight)."""
    ones = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    ones.data[:] = 1.0
    return ones


def recency_weighted(
    history: sp.csr_matrix, last_seen: sp.csr_matrix, half_life: float
) -> sp.csr_matrix:
    """``history`` with each entry's weight halved every ``half_life`` share of its
    user's history, counted from the newest: with ``n`` items in a row, the item at
    recency rank ``r`` (0 = the latest, by ``last_seen``) is multiplied by
    ``0.5 ** (r / (half_life * n))``. ``last_seen`` holds each entry's latest timestamp,
    in the same sparsity pattern as ``history``. ``half_life`` 0 returns ``history``."""
    if half_life <= 0:
        return history
    history = sp.csr_matrix(history)
    last_seen = sp.csr_matrix(last_seen)
    if not (
        np.array_equal(history.indptr, last_seen.indptr)
        and np.array_equal(history.indices, last_seen.indices)
    ):
        raise ValueError("history and last_seen must have the same sparsity pattern")
    lengths = np.diff(history.indptr)
    rows = np.repeat(np.arange(history.shape[0]), lengths)
    order = np.lexsort((-np.asarray(last_seen.data, dtype=np.float64), rows))
    rank = np.empty(order.size, dtype=np.float64)
    rank[order] = np.arange(order.size) - history.indptr[rows[order]]
    scale = half_life * np.maximum(lengths[rows], 1)
    weighted = history.copy().astype(np.float32)
    weighted.data = weighted.data * np.power(0.5, rank / scale).astype(np.float32)
    return weighted
