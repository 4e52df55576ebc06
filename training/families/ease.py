"""EASE (Steck 2019): the closed-form item-item model ``B = I - P diag(1 / diag(P))``
with ``P = (X^T X + lambda I)^-1``, diagonal zero. The dense inverse costs
``n_items^2`` floats twice over (float32: 8 bytes x n_items^2 at the peak, 3.2 GB at the
default limit of 20,000 items, ``RECSITE_EASE_MAX_ITEMS``) and ``n_items^3`` time, so a
larger catalogue is refused before anything is allocated. The artifact keeps each row's
``top_k`` largest weights by magnitude (sparse), which is what is scored."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from recommender.family_scoring import binarised
from training.families.base import FamilyLimitExceeded, FitContext, ItemItemModel

_ROWS_PER_CHUNK = 1024


def fit(train: sp.csr_matrix, params: dict[str, Any], context: FitContext) -> ItemItemModel:
    n_items = train.shape[1]
    if n_items > context.ease_max_items:
        raise FamilyLimitExceeded(
            f"EASE refuses {n_items:,} items: its dense inverse is limited to "
            f"RECSITE_EASE_MAX_ITEMS = {context.ease_max_items:,} items; choose itemknn or als "
            "for a catalogue this large"
        )
    x = binarised(train) if params["binary"] else sp.csr_matrix(train, dtype=np.float32)
    gram = np.asarray((x.T @ x).toarray(), dtype=np.float32)
    gram[np.diag_indices(n_items)] += np.float32(params["lambda"])
    context.progress(1, 3)
    inverse = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
    del gram
    context.progress(2, 3)
    weights = inverse / -np.diag(inverse)[None, :]
    del inverse
    weights[np.diag_indices(n_items)] = 0.0
    rows = []
    for start in range(0, n_items, _ROWS_PER_CHUNK):
        chunk = weights[start : start + _ROWS_PER_CHUNK]
        rows.append(_dense_top_k(chunk, int(params["top_k"])))
    context.progress(3, 3)
    return ItemItemModel(sp.vstack(rows, format="csr", dtype=np.float32))


def _dense_top_k(block: np.ndarray, k: int) -> sp.csr_matrix:
    """A dense block's ``k`` largest weights per row by magnitude, negative ones
    included (they push items down: on MovieLens 100K keeping only the positive ones cost
    P@10 0.168 -> 0.160), as CSR."""
    k = min(k, block.shape[1])
    if k < block.shape[1]:
        columns = np.argpartition(-np.abs(block), k - 1, axis=1)[:, :k]
        values = np.take_along_axis(block, columns, axis=1)
    else:
        columns = np.broadcast_to(np.arange(block.shape[1]), block.shape)
        values = block
    rows = np.broadcast_to(np.arange(block.shape[0])[:, None], columns.shape)
    keep = values != 0
    return sp.csr_matrix(
        (values[keep], (rows[keep], columns[keep])), shape=block.shape, dtype=np.float32
    )
