"""What every family's ``fit`` takes and returns.

A fit returns one of three models, by the family's kind (``recommender.families``):
``FactorModel`` (user / item factors and biases), ``ItemItemModel`` (a sparse top-k
item x item matrix) or ``ScoresModel`` (one score per item). Each knows the arrays it
writes into the artifact and how to follow another run's user and item order (to
evaluate a saved champion on this run's holdout)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recommender.families import FamilyKind

ProgressCallback = Callable[[int, int], None]
"""``callback(steps_done, steps_total)`` after each epoch / iteration / chunk; raise to
abort the fit."""

# Items whose score must rank last (unknown to a saved champion) get this.
UNKNOWN_ITEM_SCORE = np.float32(-1e30)


class FamilyLimitExceeded(ValueError):
    """The data is too large for the family (EASE's dense inverse above its item limit)."""


@dataclass(frozen=True)
class FitContext:
    """What a fit may use besides the train matrix and its hyper-parameters."""

    num_threads: int = 1
    random_seed: int = 42
    on_progress: ProgressCallback | None = None
    item_features: sp.csr_matrix | None = None  # lightfm
    user_features: sp.csr_matrix | None = None  # lightfm
    last_seen: sp.csr_matrix | None = None  # each pair's latest timestamp (popularity decay)
    ease_max_items: int = 20_000

    def progress(self, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(done, total)


def _positions(new_to_old: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    known = new_to_old >= 0
    return np.flatnonzero(known), new_to_old[known]


@dataclass(frozen=True)
class FactorModel:
    user_factors: np.ndarray
    item_factors: np.ndarray
    user_biases: np.ndarray
    item_biases: np.ndarray
    feature_arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def artifact_arrays(self) -> dict[str, np.ndarray]:
        return {
            "user_embeddings": self.user_factors,
            "user_biases": self.user_biases,
            "item_embeddings": self.item_factors,
            "item_biases": self.item_biases,
            **self.feature_arrays,
        }

    def reindexed(self, user_pos: np.ndarray, item_pos: np.ndarray) -> FactorModel:
        """In another order: ``user_pos[i]`` is the position here of that run's user
        ``i`` (-1: unknown, a zero vector), same for items (-1: ranks last)."""
        dim = self.user_factors.shape[1]
        users = np.zeros((len(user_pos), dim), np.float32)
        user_biases = np.zeros(len(user_pos), np.float32)
        new, old = _positions(user_pos)
        users[new], user_biases[new] = self.user_factors[old], self.user_biases[old]
        items = np.zeros((len(item_pos), dim), np.float32)
        item_biases = np.full(len(item_pos), UNKNOWN_ITEM_SCORE, np.float32)
        new, old = _positions(item_pos)
        items[new], item_biases[new] = self.item_factors[old], self.item_biases[old]
        return FactorModel(users, items, user_biases, item_biases)


@dataclass(frozen=True)
class ItemItemModel:
    similarity: sp.csr_matrix  # (n_items, n_items) float32, top-k per row

    def artifact_arrays(self) -> dict[str, np.ndarray]:
        return {
            "similarity_data": self.similarity.data,
            "similarity_indices": self.similarity.indices,
            "similarity_indptr": self.similarity.indptr,
        }

    def reindexed(self, user_pos: np.ndarray, item_pos: np.ndarray) -> ItemItemModel:
        """Over another run's items (users need nothing: the history is theirs). An item
        unknown here neither recommends nor is recommended."""
        n = len(item_pos)
        new, old = _positions(item_pos)
        moved = sp.csr_matrix((np.ones(new.size, np.float32), (new, old)), shape=(n, self.n_old))
        return ItemItemModel(sp.csr_matrix(moved @ self.similarity @ moved.T, dtype=np.float32))

    @property
    def n_old(self) -> int:
        return self.similarity.shape[0]


@dataclass(frozen=True)
class ScoresModel:
    scores: np.ndarray  # (n_items,) float32

    def artifact_arrays(self) -> dict[str, np.ndarray]:
        return {"item_scores": self.scores}

    def reindexed(self, user_pos: np.ndarray, item_pos: np.ndarray) -> ScoresModel:
        scores = np.full(len(item_pos), UNKNOWN_ITEM_SCORE, np.float32)
        new, old = _positions(item_pos)
        scores[new] = self.scores[old]
        return ScoresModel(scores)


FittedModel = FactorModel | ItemItemModel | ScoresModel


def top_k_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row's ``k`` largest entries (ties: the lower column), the rest dropped."""
    matrix = sp.csr_matrix(matrix)
    lengths = np.diff(matrix.indptr)
    if lengths.size == 0 or lengths.max() <= k:
        return matrix
    rows = np.repeat(np.arange(matrix.shape[0]), lengths)
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    rank = np.empty(order.size, np.int64)
    rank[order] = np.arange(order.size) - matrix.indptr[rows[order]]
    keep = rank < k
    return sp.csr_matrix(
        (matrix.data[keep], (rows[keep], matrix.indices[keep])), shape=matrix.shape
    )


def model_from_artifact(kind: FamilyKind, arrays: Mapping[str, np.ndarray]) -> FittedModel:
    """The model a saved artifact holds (arrays as ``recommender.artifacts`` loads them)."""
    if kind is FamilyKind.FACTORS:
        return FactorModel(
            arrays["user_embeddings"],
            arrays["item_embeddings"],
            arrays["user_biases"],
            arrays["item_biases"],
        )
    if kind is FamilyKind.ITEM_ITEM:
        n = len(arrays["similarity_indptr"]) - 1
        return ItemItemModel(
            sp.csr_matrix(
                (
                    np.asarray(arrays["similarity_data"]),
                    np.asarray(arrays["similarity_indices"]),
                    np.asarray(arrays["similarity_indptr"]),
                ),
                shape=(n, n),
            )
        )
    return ScoresModel(np.asarray(arrays["item_scores"], np.float32))
