"""ItemKNN: cosine similarity of the item columns of the interaction matrix (optionally
BM25-weighted first), each item keeping its ``neighbours`` most similar items.

The item x item products go through ``implicit``'s ``all_pairs_knn`` (compiled, one pass
per item over its users' rows, a bounded heap of the best ``k + 1`` per item, threads
over items): memory follows the kept neighbours, never ``n_items^2`` nor one block's
co-occurrences, and the time is the co-occurrence count itself. scipy's blockwise
sparse product with a sort per block did the same sums ~10x slower at 50k items (issue
17). Exact: the same cosines and, among equal ones, the same kept (the lower column).
It runs as one call, so the fit reports progress once, at the end (a cancel is seen
after it)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from implicit.nearest_neighbours import all_pairs_knn
from sklearn.preprocessing import normalize

from recommender.family_scoring import binarised
from training.families.base import FitContext, ItemItemModel, top_k_per_row

_TIE_BREAK = 1e-9


def bm25_weight(matrix: sp.csr_matrix, k1: float, b: float) -> sp.csr_matrix:
    """BM25 weighting of a users x items matrix: a user's row is a document, an item a
    term (idf: items that everyone has count less; length norm: long histories count
    less per item)."""
    x = sp.coo_matrix(matrix, dtype=np.float64)
    n_users = max(x.shape[0], 1)
    idf = np.log(n_users) - np.log1p(np.bincount(x.col, minlength=x.shape[1]))
    lengths = np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()
    average = lengths.mean() if lengths.size and lengths.mean() > 0 else 1.0
    norm = (1.0 - b) + b * lengths / average
    data = x.data * (k1 + 1.0) / (k1 * norm[x.row] + x.data) * idf[x.col]
    return sp.csr_matrix((data.astype(np.float32), (x.row, x.col)), shape=x.shape)


def fit(train: sp.csr_matrix, params: dict[str, Any], context: FitContext) -> ItemItemModel:
    x = binarised(train) if params["binary"] else sp.csr_matrix(train, dtype=np.float32)
    if params["similarity"] == "bm25":
        x = bm25_weight(x, float(params["bm25_k1"]), float(params["bm25_b"]))
    columns = normalize(x, norm="l2", axis=0)  # unit columns
    k = int(params["neighbours"])
    similarity = neighbours(columns, k, context.num_threads)
    context.progress(1, 1)
    return ItemItemModel(similarity)


def neighbours(columns: sp.csr_matrix, k: int, num_threads: int = 1) -> sp.csr_matrix:
    """Each item's ``k`` largest positive dot products with the other items' columns of
    ``columns`` (users x items, float64): an items x items float32 CSR matrix. Equal
    products keep the lower column, as ``top_k_per_row`` does."""
    n_items = columns.shape[1]
    # all_pairs_knn's heap keeps an arbitrary one of equal products; column j scaled by
    # 1 + _TIE_BREAK * (n - j) / n makes equal ones favour the lower column, far below
    # float32's resolution (a binary matrix has large groups of equal cosines), and is
    # divided out again below.
    scale = 1.0 + _TIE_BREAK * (n_items - np.arange(n_items)) / max(n_items, 1)
    scaled = sp.csr_matrix(columns, dtype=np.float64, copy=True)
    scaled.data *= scale[scaled.indices]
    # k + 1: an item's own column is usually among its best; dropped below.
    best = sp.coo_matrix(
        all_pairs_knn(scaled, k + 1, num_threads=max(num_threads, 0), show_progress=False)
    )
    other = (best.row != best.col) & (best.data > 0)
    row, col = best.row[other], best.col[other]
    data = best.data[other] / (scale[row] * scale[col])
    kept = sp.csr_matrix((data.astype(np.float32), (row, col)), shape=best.shape)
    kept.sort_indices()
    return top_k_per_row(kept, k)
