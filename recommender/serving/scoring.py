"""Scoring and ranking for serving: plain numpy, no Django.

Everything works on "universe" indices: the model's items first (their index in the
artifact), then items added to the catalog after training ("extras"), scored through the
category feature embeddings. Scores are float32; an item that must not be returned has
score ``-inf``.

Ranking is a total order (score descending, then index ascending), so the page at
``offset`` is always the same slice of the same list: page 2 never repeats page 1 for the
same model, user and filters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import _sparsetools

MASKED = np.float32(-np.inf)
# Scores per group whose maximum ``top_candidates`` takes first: the maxima are ~1.5 %
# of the scores.
_GROUP = 64
FactorBlock = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Similarity:
    """An item-item matrix (square) as CSR arrays: row ``i``
    (``indices[indptr[i]:indptr[i+1]]``, ``data[...]``) is what history item ``i`` adds
    to each item it recommends.

    Built once per load: the arrays are checked (scipy's kernels read them unchecked) and
    the index arrays given one dtype, as those kernels need: int32 (the artifact's
    ``indices``, memory-mapped, with a copy of ``indptr``) unless the entries need int64."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray

    def __post_init__(self) -> None:
        indptr, indices = np.asarray(self.indptr), np.asarray(self.indices)
        data = np.asarray(self.data, dtype=np.float32)
        n = indptr.size - 1
        if (
            n < 0
            or indptr[0] != 0
            or indptr[-1] != indices.size
            or indices.size != data.size
            or (n and np.any(indptr[1:] < indptr[:-1]))
            or (indices.size and (indices.min() < 0 or indices.max() >= n))
        ):
            raise ValueError("not a square CSR matrix")
        index = np.int32 if indices.size < 2**31 else np.int64
        object.__setattr__(self, "indptr", np.ascontiguousarray(indptr, dtype=index))
        object.__setattr__(self, "indices", np.ascontiguousarray(indices, dtype=index))
        object.__setattr__(self, "data", np.ascontiguousarray(data))

    @property
    def n_items(self) -> int:
        return int(self.indptr.size) - 1


def history_scores(
    similarity: Similarity, history: np.ndarray, n_items: int, *, recency_half_life: float
) -> np.ndarray:
    """Scores from a user's current history (item positions, the most recent first; each
    item counts once, at its latest position): the sum of the history items' rows, each
    weighted ``0.5 ** (rank / (recency_half_life * n))`` by recency rank (0 = the latest)
    when ``recency_half_life`` > 0, as training scored it (``family_scoring``).

    Two passes of scipy's compiled CSR kernels: gather the history's rows, then add them
    up, row after row, in float32 (``scores[column] += value x weight``, what
    :func:`history_terms` lists, in its order). numpy's gather-and-``add.at`` of the same
    terms cost ~3x more: index arithmetic and copies over every term."""
    if n_items < similarity.n_items:
        raise ValueError("n_items must cover the similarity's items")
    scores = np.zeros(n_items, dtype=np.float32)
    items, weights = history_weights(history, recency_half_life)
    if items.size == 0:
        return scores
    if items.min() < 0 or items.max() >= similarity.n_items:
        raise IndexError("a history item outside the similarity matrix")
    indptr = similarity.indptr
    rows = items.astype(indptr.dtype)
    starts = np.empty(rows.size + 1, dtype=indptr.dtype)
    starts[0] = 0
    np.cumsum(indptr[rows + 1] - indptr[rows], out=starts[1:])
    columns = np.empty(int(starts[-1]), dtype=indptr.dtype)
    values = np.empty(columns.size, dtype=np.float32)
    _sparsetools.csr_row_index(
        rows.size, rows, indptr, similarity.indices, similarity.data, columns, values
    )
    # The gathered rows read as the columns of an (n_items x history) CSC matrix.
    _sparsetools.csc_matvec(n_items, rows.size, starts, columns, values, weights, scores)
    return scores


def history_weights(history: np.ndarray, recency_half_life: float) -> tuple[np.ndarray, np.ndarray]:
    """The distinct items of ``history`` (the most recent first), each at its latest
    position, and each one's weight in the sum (float32)."""
    # A dict keeps each key's first occurrence in order: for the few hundred items of a
    # history, a third of ``np.unique(return_index=True)`` plus the sort back to order.
    distinct = dict.fromkeys(history.tolist())
    items = np.fromiter(distinct, dtype=np.int64, count=len(distinct))
    if recency_half_life > 0 and items.size:
        ranks = np.arange(items.size, dtype=np.float64)
        weights = np.power(0.5, ranks / (recency_half_life * items.size)).astype(np.float32)
    else:
        weights = np.ones(items.size, dtype=np.float32)
    return items, weights


@dataclass(frozen=True)
class Terms:
    """The terms of a history's sum, one per stored entry of the history items' rows, row
    after row: ``values[t]`` (weight x similarity) goes to item ``columns[t]``; history
    item ``i`` (an index into the history's items) contributes ``lengths[i]`` terms."""

    lengths: np.ndarray
    columns: np.ndarray
    values: np.ndarray


def history_terms(similarity: Similarity, items: np.ndarray, weights: np.ndarray) -> Terms:
    """Every term of ``sum_i weights[i] x similarity[items[i]]``, gathered without a loop
    (the memory-mapped rows are read, never copied whole)."""
    starts = np.asarray(similarity.indptr[items], dtype=np.int64)
    ends = np.asarray(similarity.indptr[items + 1], dtype=np.int64)
    lengths = ends - starts
    total = int(lengths.sum())
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
    return Terms(
        lengths=lengths,
        columns=np.asarray(similarity.indices[offsets], dtype=np.int64),
        values=np.asarray(similarity.data[offsets], dtype=np.float32) * np.repeat(weights, lengths),
    )


"""``(embeddings (n, d), biases (n,))`` of consecutive universe items."""


def score_blocks(vector: np.ndarray, bias: float, blocks: Sequence[FactorBlock]) -> np.ndarray:
    """``blocks[..].embeddings @ vector + biases + bias`` into one float32 array.

    One matrix-vector product per block, written in place: a memory-mapped block is read,
    never copied."""
    total = sum(int(emb.shape[0]) for emb, _ in blocks)
    out = np.empty(total, dtype=np.float32)
    start = 0
    vector = np.asarray(vector, dtype=np.float32)
    for embeddings, biases in blocks:
        end = start + int(embeddings.shape[0])
        if end > start:
            np.dot(embeddings, vector, out=out[start:end])
            out[start:end] += biases
        start = end
    out += np.float32(bias)
    return out


def cosine_blocks(
    vector: np.ndarray, blocks: Sequence[FactorBlock], norms: np.ndarray
) -> np.ndarray:
    """Cosine similarity of ``vector`` with every item (biases ignored); items with a zero
    vector get ``-inf``."""
    total = int(norms.size)
    out = np.empty(total, dtype=np.float32)
    start = 0
    vector = np.asarray(vector, dtype=np.float32)
    for embeddings, _ in blocks:
        end = start + int(embeddings.shape[0])
        if end > start:
            np.dot(embeddings, vector, out=out[start:end])
        start = end
    query_norm = float(np.linalg.norm(vector))
    if query_norm == 0.0:
        return np.full(total, MASKED, dtype=np.float32)
    valid = norms > 0
    out[valid] /= norms[valid] * np.float32(query_norm)
    out[~valid] = MASKED
    return out


def row_norms(blocks: Sequence[FactorBlock]) -> np.ndarray:
    """The L2 norm of every item's embedding, in universe order (float32)."""
    parts = [np.linalg.norm(np.asarray(emb, dtype=np.float32), axis=1) for emb, _ in blocks]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def category_factors(
    feature_embeddings: np.ndarray,
    feature_biases: np.ndarray,
    feature_rows: Sequence[Sequence[int]],
) -> FactorBlock:
    """Factors of items the model has not seen, from their categories: the mean of their
    category feature vectors and biases.

    That is exactly LightFM's representation of an item whose (row-normalised) feature
    row holds only those categories, so a new item ranks where a trained item with the
    same categories and no interactions of its own would. Every entry of
    ``feature_rows`` must be non-empty."""
    counts = np.fromiter((len(rows) for rows in feature_rows), dtype=np.int64)
    flat = np.fromiter((r for rows in feature_rows for r in rows), dtype=np.int64)
    return category_factors_flat(feature_embeddings, feature_biases, flat, counts)


def category_factors_flat(
    feature_embeddings: np.ndarray,
    feature_biases: np.ndarray,
    flat: np.ndarray,
    counts: np.ndarray,
    weights: np.ndarray | None = None,
) -> FactorBlock:
    """:func:`category_factors` with the rows given as one array: item ``i``'s feature
    rows are the next ``counts[i]`` entries of ``flat``. With ``weights`` (one per entry
    of ``flat``: 1 for a category, the TF-IDF weight for a title term) the mean is
    weighted, as LightFM weighs a row normalised to sum to 1."""
    dim = int(feature_embeddings.shape[1])
    if counts.size == 0:
        return np.zeros((0, dim), np.float32), np.zeros(0, np.float32)
    if (counts == 0).any():
        raise ValueError("every new item needs at least one known feature")
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if weights is None:
        weights = np.ones(flat.size, np.float32)
    weights = np.asarray(weights, np.float32)
    embeddings = np.add.reduceat(
        np.asarray(feature_embeddings[flat], np.float32) * weights[:, None], starts
    )
    biases = np.add.reduceat(np.asarray(feature_biases[flat], np.float32) * weights, starts)
    totals = np.add.reduceat(weights, starts)
    embeddings /= totals[:, None]
    biases /= totals
    return embeddings.astype(np.float32), biases.astype(np.float32)


def cooccurrence_cosine(
    indptr: np.ndarray, indices: np.ndarray, item: int, n_items: int
) -> np.ndarray:
    """Each item's cosine with ``item`` over a users x items interaction matrix given as
    CSR parts (binary: ``|U_i & U_j| / sqrt(|U_i| |U_j|)``, ``U`` an item's users). Two
    passes over the entries, no index built: for models with nothing item-to-item of
    their own (score families), whose similar items are what the same users had."""
    indices = np.asarray(indices)
    entries = np.flatnonzero(indices == item)
    scores = np.zeros(n_items, dtype=np.float32)
    if entries.size == 0:
        return scores
    users = np.searchsorted(indptr, entries, side="right") - 1
    starts = np.asarray(indptr[users], dtype=np.int64)
    lengths = np.asarray(indptr[users + 1], dtype=np.int64) - starts
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    together = np.bincount(np.asarray(indices[offsets], np.int64), minlength=n_items)
    degrees = np.bincount(indices.astype(np.int64, copy=False), minlength=n_items)
    valid = degrees > 0
    scores[valid] = together[valid] / np.sqrt(degrees[valid] * float(entries.size))
    return scores


def mask(scores: np.ndarray, indices: np.ndarray) -> None:
    """Exclude ``indices`` (universe positions; negatives = unknown ids are ignored)."""
    indices = np.asarray(indices, dtype=np.int64)
    indices = indices[(indices >= 0) & (indices < scores.size)]
    scores[indices] = MASKED


def mask_known(scores: np.ndarray, indices: np.ndarray) -> None:
    """Exclude ``indices``, every one a position of ``scores`` (the model's own seen
    items, the catalogue's blocked ones): no bounds filter to pay per request."""
    scores[indices] = MASKED


def restrict(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Keep only ``allowed`` positions; everything else becomes ``-inf``."""
    out = np.full(scores.size, MASKED, dtype=np.float32)
    out[allowed] = scores[allowed]
    return out


def eligible_count(scores: np.ndarray) -> int:
    """How many items are not masked."""
    return int(scores.size) - int(np.count_nonzero(scores == MASKED))


@dataclass(frozen=True)
class Page:
    indices: np.ndarray  # universe positions, best first
    scores: np.ndarray
    total: int  # how many items were eligible (not masked)


def rank_page(scores: np.ndarray, *, offset: int, limit: int) -> Page:
    """Items ``offset .. offset + limit`` of the ranking by (score desc, index asc).

    :func:`top_candidates` finds the top ``offset + limit`` in O(n); every item tied with
    the last of them is kept too, so the order among ties (by index) does not depend on the
    page asked for. Only that candidate set is sorted."""
    if offset < 0 or limit < 0:
        raise ValueError("offset and limit must be >= 0")
    n = int(scores.size)
    total = eligible_count(scores)
    end = min(offset + limit, total)
    if end <= offset:
        return Page(np.zeros(0, np.int64), np.zeros(0, np.float32), total)
    if end < n:
        candidates = top_candidates(scores, end)
    else:
        candidates = np.flatnonzero(scores != MASKED)
    order = np.lexsort((candidates, -scores[candidates]))
    chosen = candidates[order][offset:end]
    return Page(chosen.astype(np.int64), scores[chosen].astype(np.float32), total)


def top_candidates(scores: np.ndarray, k: int) -> np.ndarray:
    """The positions (ascending) of every score >= the ``k``-th largest (``0 < k <
    scores.size``): the top ``k`` and everything tied with the last of them.

    ``argpartition`` over all scores allocates and shuffles an index per score (100k
    items: ~0.2 ms). Instead, the scores are split into groups of ``_GROUP`` (any split
    works; strided rows of a reshape are one vectorised pass) and each group's maximum
    taken: the ``k``-th largest maximum is a lower bound of the ``k``-th largest score
    (``k`` groups each hold a score at least that high), so the scores at or above it are
    a small pool holding the whole answer, and only that pool is partitioned. Exact for
    any input; when masked scores leave the bound at ``-inf`` the pool is everything."""
    n = int(scores.size)
    full = n - n % _GROUP
    pool: np.ndarray | None = None
    if full // _GROUP > k:
        maxima = scores[:full].reshape(_GROUP, -1).max(axis=0)
        if full < n:
            maxima = np.append(maxima, scores[full:].max())
        bound = np.partition(maxima, maxima.size - k)[maxima.size - k]
        pool = np.flatnonzero(scores >= bound)
    if pool is None or pool.size == n:
        top = np.argpartition(scores, n - k)[n - k :]
        return np.flatnonzero(scores >= scores[top].min())
    pooled = scores[pool]
    threshold = np.partition(pooled, pool.size - k)[pool.size - k]
    return pool[pooled >= threshold]
