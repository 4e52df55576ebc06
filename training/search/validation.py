"""The validation split the search judges trials on, carved from a run's training
window: each user's latest events *of the train part* (per-user, the recommender's
holdout fraction), cleaned as every split is (``training.pipeline.split``). The run's
holdout (the gate's test events) is never among them, nor among what trials fit on, so
the gates judge the winner on events the search never saw."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from training.pipeline.matrices import Duplicates, Interactions, last_seen_matrix
from training.pipeline.split import Split, split_matrices, split_per_user


def validation_split(interactions: Interactions, holdout: Split, fraction: float) -> Split:
    """Masks over the same events as ``holdout``: train and validation are both inside
    ``holdout.train``; validation is each user's latest ``fraction`` of it."""
    inside = np.flatnonzero(holdout.train)
    inner = split_per_user(interactions.subset(holdout.train), fraction)
    train = np.zeros(len(holdout.train), dtype=bool)
    test = np.zeros(len(holdout.train), dtype=bool)
    train[inside[inner.train]] = True
    test[inside[inner.test]] = True
    return Split(train=train, test=test, stats=inner.stats)


@dataclass(frozen=True)
class SearchData:
    """What every trial fits on and is judged on (same shape as the run's matrices)."""

    train: sp.csr_matrix
    validation: sp.csr_matrix
    last_seen: sp.csr_matrix  # each train pair's latest timestamp (recency, decay)
    item_features: sp.csr_matrix | None = None
    user_features: sp.csr_matrix | None = None

    @property
    def n_items(self) -> int:
        return int(self.train.shape[1])


def search_data(
    interactions: Interactions,
    holdout: Split,
    *,
    fraction: float,
    n_users: int,
    n_items: int,
    duplicates: Duplicates = "sum",
    item_features: sp.csr_matrix | None = None,
    user_features: sp.csr_matrix | None = None,
) -> tuple[SearchData, Split]:
    """The search's matrices, and the validation split they come from (its stats go on
    the run)."""
    split = validation_split(interactions, holdout, fraction)
    train, validation = split_matrices(interactions, split, n_users, n_items, duplicates=duplicates)
    seen = last_seen_matrix(interactions.subset(split.train), n_users, n_items)
    data = SearchData(train, validation, seen, item_features, user_features)
    return data, split
