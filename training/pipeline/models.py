"""Scorers: the popularity baseline, a LightFM model, and plain embedding arrays.

All three satisfy :class:`training.pipeline.metrics.Scorer`, so a candidate, the
baseline and a saved champion artifact are evaluated by the same code on the same
holdout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

Loss = Literal["warp", "bpr", "logistic", "warp-kos"]
EpochCallback = Callable[[int, int], None]
"""Called as ``callback(epochs_done, epochs_total)`` after each epoch; raise to abort."""


class PopularityScorer:
    """Every user gets the same scores: each item's total weight in train."""

    def __init__(self, train: sp.csr_matrix) -> None:
        self.popularity: np.ndarray = np.asarray(train.sum(axis=0), dtype=np.float32).ravel()
        self.n_items = int(self.popularity.size)

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self.popularity, (len(users), 1))


class EmbeddingScorer:
    """``score(u, i) = user_embeddings[u] . item_embeddings[i] + user_biases[u] + item_biases[i]``.

    The arrays are what a LightFM model's representations (or a saved artifact) hold;
    with memory-mapped artifact arrays nothing is copied until a batch is scored.
    """

    def __init__(
        self,
        user_embeddings: np.ndarray,
        user_biases: np.ndarray,
        item_embeddings: np.ndarray,
        item_biases: np.ndarray,
    ) -> None:
        if user_embeddings.shape[0] != user_biases.shape[0]:
            raise ValueError("user embeddings and biases disagree on the number of users")
        if item_embeddings.shape[0] != item_biases.shape[0]:
            raise ValueError("item embeddings and biases disagree on the number of items")
        if user_embeddings.shape[1] != item_embeddings.shape[1]:
            raise ValueError("user and item embeddings have different dimensions")
        self.user_embeddings = user_embeddings
        self.user_biases = user_biases
        self.item_embeddings = item_embeddings
        self.item_biases = item_biases
        self.n_items = int(item_embeddings.shape[0])

    @classmethod
    def from_lightfm(
        cls,
        model: LightFM,
        item_features: sp.csr_matrix | None = None,
        user_features: sp.csr_matrix | None = None,
    ) -> EmbeddingScorer:
        """Precompute every user's and item's representation (features times factors)."""
        item_biases, item_embeddings = model.get_item_representations(item_features)
        user_biases, user_embeddings = model.get_user_representations(user_features)
        return cls(user_embeddings, user_biases, item_embeddings, item_biases)

    def score(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        scores = self.user_embeddings[users] @ self.item_embeddings.T
        scores += self.user_biases[users][:, None]
        scores += self.item_biases[None, :]
        return scores


@dataclass(frozen=True)
class LightFMParams:
    no_components: int = 32
    loss: Loss = "warp"
    learning_rate: float = 0.05
    epochs: int = 20
    item_alpha: float = 0.0
    user_alpha: float = 0.0
    num_threads: int = 1
    random_state: int | None = 42

    def __post_init__(self) -> None:
        if self.loss not in ("warp", "bpr", "logistic", "warp-kos"):
            raise ValueError(f"unknown loss {self.loss!r}")
        if self.no_components < 1 or self.epochs < 1 or self.num_threads < 1:
            raise ValueError("no_components, epochs and num_threads must be at least 1")
        if self.learning_rate <= 0 or self.item_alpha < 0 or self.user_alpha < 0:
            raise ValueError("learning_rate must be positive and the alphas non-negative")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class FittedLightFM:
    model: LightFM
    params: LightFMParams
    item_features: sp.csr_matrix | None
    user_features: sp.csr_matrix | None

    def scorer(self) -> EmbeddingScorer:
        return EmbeddingScorer.from_lightfm(self.model, self.item_features, self.user_features)


def fit_lightfm(
    train: sp.csr_matrix,
    params: LightFMParams,
    *,
    item_features: sp.csr_matrix | None = None,
    user_features: sp.csr_matrix | None = None,
    on_epoch: EpochCallback | None = None,
) -> FittedLightFM:
    """Fit LightFM on the train matrix one epoch at a time, reporting after each.

    Every stored entry of ``train`` is a positive; its value (the summed event weight)
    becomes LightFM's ``sample_weight``, except for ``warp-kos`` which accepts none.
    """
    model = LightFM(
        no_components=params.no_components,
        loss=params.loss,
        learning_rate=params.learning_rate,
        item_alpha=params.item_alpha,
        user_alpha=params.user_alpha,
        random_state=params.random_state,
    )
    coo = sp.coo_matrix(train, dtype=np.float32)
    positives = sp.coo_matrix(
        (np.ones_like(coo.data), (coo.row, coo.col)), shape=coo.shape, dtype=np.float32
    )
    sample_weight = None if params.loss == "warp-kos" else coo
    for epoch in range(params.epochs):
        model.fit_partial(
            positives,
            user_features=user_features,
            item_features=item_features,
            sample_weight=sample_weight,
            epochs=1,
            num_threads=params.num_threads,
        )
        if on_epoch is not None:
            on_epoch(epoch + 1, params.epochs)
    return FittedLightFM(model, params, item_features, user_features)
