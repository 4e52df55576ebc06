"""Fit a model family by name, and turn a fitted (or saved) model into a scorer for the
offline evaluation, through ``recommender.family_scoring`` as serving will."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.families import FamilyKind, family_get
from recommender.family_scoring import (
    binarised,
    factor_scores,
    item_item_scores,
    recency_weighted,
)
from training.families import als, ease, itemknn, lightfm, popularity, svd
from training.families.base import FactorModel, FitContext, FittedModel, ItemItemModel

FitFunction = Callable[[sp.csr_matrix, dict[str, Any], FitContext], FittedModel]
FIT: dict[str, FitFunction] = {
    "lightfm": lightfm.fit,
    "ease": ease.fit,
    "itemknn": itemknn.fit,
    "als": als.fit,
    "svd": svd.fit,
    "popularity": popularity.fit,
}


def fit_family(
    train: sp.csr_matrix, hyperparameters: dict[str, Any], context: FitContext
) -> FittedModel:
    """Fit ``hyperparameters["family"]`` (as ``run_hyperparameters`` resolves them)."""
    family = family_get(hyperparameters["family"])
    return FIT[family.name](train, hyperparameters, context)


class FamilyScorer:
    """A fitted model as a ``training.pipeline.metrics.Scorer``. Item-item models score
    the users' rows of ``history`` (the train matrix; 1 per entry with ``binary``),
    recency-weighted by ``last_seen`` when ``recency_half_life`` is set."""

    def __init__(
        self,
        model: FittedModel,
        *,
        history: sp.csr_matrix,
        last_seen: sp.csr_matrix | None = None,
        recency_half_life: float = 0.0,
        binary: bool = False,
    ) -> None:
        self.model = model
        self.history = binarised(history) if binary else sp.csr_matrix(history)
        self.last_seen = None if last_seen is None else sp.csr_matrix(last_seen)
        self.recency_half_life = recency_half_life
        self.n_items = int(self.history.shape[1])

    def score(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        model = self.model
        if isinstance(model, FactorModel):
            return factor_scores(
                model.user_factors[users],
                model.item_factors,
                model.user_biases[users],
                model.item_biases,
            )
        if isinstance(model, ItemItemModel):
            rows = self.history[users]
            if self.recency_half_life > 0 and self.last_seen is not None:
                rows = recency_weighted(rows, self.last_seen[users], self.recency_half_life)
            return item_item_scores(rows, model.similarity)
        return np.tile(model.scores, (len(users), 1))


def family_scorer(
    model: FittedModel,
    hyperparameters: dict[str, Any],
    *,
    history: sp.csr_matrix,
    last_seen: sp.csr_matrix | None,
) -> FamilyScorer:
    family = family_get(hyperparameters["family"])
    if family.kind is not FamilyKind.ITEM_ITEM:
        return FamilyScorer(model, history=history)
    return FamilyScorer(
        model,
        history=history,
        last_seen=last_seen,
        recency_half_life=float(hyperparameters.get("recency_half_life", 0.0)),
        binary=bool(hyperparameters.get("binary", False)),
    )
