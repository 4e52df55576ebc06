"""Small generated data and a clock the tests advance themselves, for the search tests."""

from __future__ import annotations

import numpy as np

from training.pipeline.matrices import Interactions
from training.pipeline.split import Split, split_per_user
from training.search.validation import SearchData, search_data

N_USERS, N_ITEMS = 60, 30


class TickClock:
    """Every read advances ``tick`` seconds: a search on it runs the same way whatever
    the machine's speed."""

    def __init__(self, tick: float = 0.1) -> None:
        self.tick = tick
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


def taste_groups(seed: int = 3) -> Interactions:
    """Three taste groups; each user's events spread over time."""
    rng = np.random.default_rng(seed)
    users, items, stamps = [], [], []
    for u in range(N_USERS):
        same = (np.arange(N_ITEMS) % 3) == (u % 3)
        taken = np.flatnonzero(rng.random(N_ITEMS) < np.where(same, 0.6, 0.05))
        users += [u] * len(taken)
        items += taken.tolist()
        stamps += rng.integers(0, 10_000, len(taken)).tolist()
    return Interactions(
        users=np.asarray(users, np.int64),
        items=np.asarray(items, np.int64),
        weights=np.ones(len(users), np.float32),
        timestamps=np.asarray(stamps, np.int64),
    )


def holdout_and_search_data(interactions: Interactions) -> tuple[Split, SearchData, Split]:
    holdout = split_per_user(interactions, 0.2)
    data, validation = search_data(
        interactions, holdout, fraction=0.2, n_users=N_USERS, n_items=N_ITEMS
    )
    return holdout, data, validation
