"""Ranking metrics, vectorised, and :func:`evaluate` which scores users in batches.

Definitions (binary relevance: an item is relevant to a user when it is in their test
row; ``hits[u, r]`` says whether the item at rank ``r`` of ``u``'s top-k is relevant):

- ``precision@k = hits / k`` — always divided by ``k``, even when the user has fewer
  than ``k`` test items. This is LightFM's definition (``lightfm.evaluation``), so our
  numbers and theirs agree.
- ``recall@k = hits / n_relevant`` — LightFM's definition too.
- ``ndcg@k = DCG / IDCG`` with ``DCG = sum_r hits[r] / log2(r + 2)`` and the ideal DCG
  of ``min(n_relevant, k)`` hits at the top.
- ``map@k``: ``AP@k = sum_r precision@(r+1) * hits[r] / min(n_relevant, k)``, averaged.
- ``coverage@k``: distinct items recommended in any evaluated user's top-k over the
  number of items in the catalogue.
- ``auc``: per user, the probability that a test item scores above a negative (an item
  in neither the user's train nor test row), averaged over users. Train items are left
  out as LightFM's ``auc_score`` does. Ties count one half (Mann-Whitney); LightFM counts
  a tie as a loss, so the two differ only when scores tie (e.g. the popularity baseline),
  never for a fitted LightFM model in practice. A user whose every non-train item is a
  test item has no negatives and scores 0.5.

Every metric is a mean over the users with at least one test interaction. Train items
are removed from the ranking before taking the top-k, so a model is never rewarded for
re-recommending what the user already has.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import scipy.sparse as sp

from recommender.metric_names import metric_key
from training.pipeline.matrices import distinct

# Per (user, item) of a batch, scoring and the AUC working arrays take ~60 bytes (scores,
# sort order, sorted scores, cumulative counts, group bounds, masks).
_BYTES_PER_SCORE = 64
DEFAULT_MEMORY_BUDGET = 256 * 1024 * 1024
_SAMPLE_SEED = 17  # the evaluation sample of users (``evaluate``'s ``max_users``)


class Scorer(Protocol):
    """Anything that scores every item for a batch of users."""

    n_items: int

    def score(self, users: np.ndarray) -> np.ndarray:
        """(len(users), n_items) float scores; a fresh array the caller may modify."""
        ...


def top_k(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Item indices of each row's ``k`` best scores, best first, as ``(rows, k)`` int64.

    ``exclude`` (same shape as ``scores``, e.g. the users' train rows) marks items that
    must not be returned. ``scores`` is modified in place where excluded. When a row has
    fewer than ``k`` eligible items the tail is padded with ``-1``.
    """
    n_rows, n_items = scores.shape
    if exclude is not None and exclude.nnz:
        ex = exclude.tocoo()
        scores[ex.row, ex.col] = -np.inf
    k_eff = min(k, n_items)
    if k_eff < n_items:
        part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    else:
        part = np.broadcast_to(np.arange(n_items), (n_rows, n_items))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    best = np.take_along_axis(part, order, axis=1).astype(np.int64)
    best[np.take_along_axis(part_scores, order, axis=1) == -np.inf] = -1
    if k_eff < k:
        best = np.hstack([best, np.full((n_rows, k - k_eff), -1, dtype=np.int64)])
    return best


def hits_matrix(top: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """``hits[u, r]``: is ``top[u, r]`` in row ``u`` of ``truth``? (bool, same shape)"""
    n_items = truth.shape[1]
    truth = sp.csr_matrix(truth, copy=True)
    truth.eliminate_zeros()
    coo = truth.tocoo()
    truth_keys = distinct(coo.row.astype(np.int64) * n_items + coo.col)
    top_keys = np.arange(top.shape[0], dtype=np.int64)[:, None] * n_items + top
    return np.isin(top_keys, truth_keys) & (top >= 0)


def _n_relevant(truth: sp.csr_matrix) -> np.ndarray:
    truth = sp.csr_matrix(truth, copy=True)
    truth.eliminate_zeros()
    return np.diff(truth.indptr)


def precision_at_k(top: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Per user: relevant items in the top-k over ``k``."""
    return hits_matrix(top, truth).sum(axis=1) / top.shape[1]


def recall_at_k(top: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Per user: relevant items in the top-k over the user's relevant items."""
    n_rel = _n_relevant(truth)
    return hits_matrix(top, truth).sum(axis=1) / np.maximum(n_rel, 1)


def ndcg_at_k(top: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Per user: DCG of the top-k over the ideal DCG (binary relevance)."""
    k = top.shape[1]
    discounts = 1.0 / np.log2(np.arange(k) + 2.0)
    dcg = hits_matrix(top, truth) @ discounts
    ideal_cum = np.concatenate([[0.0], np.cumsum(discounts)])
    idcg = ideal_cum[np.minimum(_n_relevant(truth), k)]
    return np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)


def map_at_k(top: np.ndarray, truth: sp.csr_matrix) -> np.ndarray:
    """Per user: average precision at k, normalised by ``min(n_relevant, k)``."""
    hits = hits_matrix(top, truth)
    k = top.shape[1]
    precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    denom = np.minimum(_n_relevant(truth), k)
    num = (precision_at_rank * hits).sum(axis=1)
    return np.divide(num, denom, out=np.zeros_like(num), where=denom > 0)


def coverage(top: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one top-k list (``-1`` = padding)."""
    if n_items == 0:
        return 0.0
    return float(np.unique(top[top >= 0]).size / n_items)


def _sortable_u32(values: np.ndarray) -> np.ndarray:
    """Map float32 to uint32 so that unsigned order equals float order (-0.0 first made
    +0.0 by the caller)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    return np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000))


def auc(
    scores: np.ndarray, truth: sp.csr_matrix, exclude: sp.csr_matrix | None = None
) -> np.ndarray:
    """Per user AUC of ``scores`` against ``truth``, leaving ``exclude`` items out.

    Each positive wins against the negatives scored strictly below it and half of those
    tied with it. Vectorised over the batch with one sort of the negatives (non-negatives
    pushed to the end of their row as +inf) and two ``searchsorted`` calls over row-major
    keys ``row << 32 | order-preserving uint32(score)``, which place every positive among
    its own row's negatives at once.
    """
    n_rows, n_items = scores.shape
    values = np.asarray(scores, dtype=np.float32) + np.float32(0.0)  # a copy; -0.0 -> +0.0
    negative = np.ones((n_rows, n_items), dtype=bool)
    if exclude is not None and exclude.nnz:
        ex = exclude.tocoo()
        negative[ex.row, ex.col] = False
    tc = truth.tocoo()
    kept = tc.data != 0
    pos_rows, pos_cols = tc.row[kept].astype(np.int64), tc.col[kept].astype(np.int64)
    negative[pos_rows, pos_cols] = False
    n_neg = negative.sum(axis=1)

    keys = _sortable_u32(np.where(negative, values, np.float32(np.inf)))
    keys.sort(axis=1)
    row_base = np.arange(n_rows, dtype=np.uint64)[:, None] << np.uint64(32)
    flat = (row_base | keys.astype(np.uint64)).ravel()
    del keys
    pos_keys = (pos_rows.astype(np.uint64) << np.uint64(32)) | _sortable_u32(
        values[pos_rows, pos_cols]
    ).astype(np.uint64)
    offset = pos_rows * n_items
    limit = n_neg[pos_rows]  # the +inf fillers after a row's negatives never count
    below = np.minimum(np.searchsorted(flat, pos_keys, side="left") - offset, limit)
    through = np.minimum(np.searchsorted(flat, pos_keys, side="right") - offset, limit)
    wins = np.bincount(pos_rows, weights=below + 0.5 * (through - below), minlength=n_rows)
    pairs = np.bincount(pos_rows, minlength=n_rows) * n_neg
    return np.divide(wins, pairs, out=np.full(n_rows, 0.5), where=pairs > 0)


def evaluate(
    scorer: Scorer,
    train: sp.csr_matrix,
    test: sp.csr_matrix,
    k: int = 10,
    batch_users: int | None = None,
    max_users: int | None = None,
) -> dict[str, float]:
    """Score the users with test interactions in batches and average the metrics.

    ``batch_users`` bounds memory: a batch holds a ``(batch_users, n_items)`` score
    matrix plus the AUC working arrays; by default it is chosen to stay within about
    256 MiB. ``max_users``: above that many test users, a uniform sample of that many
    (the same for the same test matrix: a fixed seed, so the candidate, popularity and
    the champion are judged on the same users). Scoring every item for every user costs
    users x items, which grows with the square of the data at one shape (10x the events:
    100x the work); a sample keeps it linear in the catalogue, and 10,000 users put the
    standard error of a mean of per-user metrics at 1 % of their spread. Returns
    ``{"precision@k", "recall@k", "ndcg@k", "map@k", "coverage@k", "auc", "users"}``
    (keys carry the actual ``k``; ``users``: how many were evaluated).
    """
    train = sp.csr_matrix(train)
    test = sp.csr_matrix(test, copy=True)
    test.eliminate_zeros()
    if train.shape != test.shape:
        raise ValueError("train and test must have the same shape")
    n_items = test.shape[1]
    if scorer.n_items != n_items:
        raise ValueError("scorer and matrices disagree on the number of items")
    if batch_users is None:
        batch_users = max(1, DEFAULT_MEMORY_BUDGET // (max(n_items, 1) * _BYTES_PER_SCORE))
    if max_users is not None and max_users < 1:
        raise ValueError("max_users must be at least 1")
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    if max_users is not None and users.size > max_users:
        rng = np.random.default_rng(_SAMPLE_SEED)
        users = np.sort(rng.choice(users, size=max_users, replace=False))
    sums = dict.fromkeys(("precision", "recall", "ndcg", "map", "auc"), 0.0)
    recommended: list[np.ndarray] = []
    for start in range(0, users.size, batch_users):
        batch = users[start : start + batch_users]
        truth, seen = test[batch], train[batch]
        scores = np.asarray(scorer.score(batch))
        sums["auc"] += float(auc(scores, truth, seen).sum())
        top = top_k(scores, k, seen)
        sums["precision"] += float(precision_at_k(top, truth).sum())
        sums["recall"] += float(recall_at_k(top, truth).sum())
        sums["ndcg"] += float(ndcg_at_k(top, truth).sum())
        sums["map"] += float(map_at_k(top, truth).sum())
        recommended.append(np.unique(top[top >= 0]))
    n = max(users.size, 1)
    return {
        metric_key("precision", k): sums["precision"] / n,
        metric_key("recall", k): sums["recall"] / n,
        metric_key("ndcg", k): sums["ndcg"] / n,
        metric_key("map", k): sums["map"] / n,
        metric_key("coverage", k): coverage(
            np.concatenate([np.zeros((0,), np.int64), *recommended]), n_items
        ),
        metric_key("auc", k): sums["auc"] / n,
        "users": float(users.size),
    }
