"""ItemKNN: cosine similarity of the item columns of the interaction matrix (optionally
BM25-weighted first), each item keeping its ``neighbours`` most similar items. Sparse
throughout: the item x item product is computed a block of items at a time and cut to
the top-k per row before the next block, so memory follows the kept neighbours and the
co-occurrences of one block, never ``n_items^2`` (100k+ items)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from recommender.family_scoring import binarised
from training.families.base import FitContext, ItemItemModel, top_k_per_row

_ITEMS_PER_BLOCK = 2048


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
    columns = sp.csc_matrix(normalize(x, norm="l2", axis=0))
    by_item = sp.csr_matrix(columns.T)  # items x users, unit rows
    n_items, k = x.shape[1], int(params["neighbours"])
    blocks = []
    total = max(1, -(-n_items // _ITEMS_PER_BLOCK))
    for step, start in enumerate(range(0, n_items, _ITEMS_PER_BLOCK), start=1):
        block = sp.coo_matrix(by_item[start : start + _ITEMS_PER_BLOCK] @ columns)
        other = (block.row + start != block.col) & (block.data > 0)  # not itself
        block = sp.csr_matrix(
            (block.data[other], (block.row[other], block.col[other])), shape=block.shape
        )
        blocks.append(top_k_per_row(block, k))
        context.progress(step, total)
    similarity = sp.vstack(blocks, format="csr", dtype=np.float32)
    return ItemItemModel(similarity)
