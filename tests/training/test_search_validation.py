"""The validation split the search judges trials on (training/search/validation.py): carved
from the training window, never touching the run's holdout."""

import dataclasses

import numpy as np

from training.search.study import SearchConfig, run_search
from training.search.validation import search_data

from .search_helpers import N_ITEMS, N_USERS, TickClock, holdout_and_search_data, taste_groups


def test_the_validation_split_lies_inside_the_holdouts_train_part():
    holdout, _, validation = holdout_and_search_data(taste_groups())
    assert validation.test.any() and validation.train.any()
    assert not (validation.train & ~holdout.train).any()
    assert not (validation.test & ~holdout.train).any()


def test_each_users_validation_events_are_their_latest_before_the_holdout():
    interactions = taste_groups()
    holdout, _, validation = holdout_and_search_data(interactions)
    for user in np.unique(interactions.users[validation.test]):
        mine = interactions.users == user
        fitted = interactions.timestamps[mine & validation.train].max()
        validated = interactions.timestamps[mine & validation.test]
        held_out = interactions.timestamps[mine & holdout.test]
        assert validated.min() >= fitted
        assert held_out.size == 0 or held_out.min() >= validated.max()


def test_the_search_never_sees_the_holdout():
    """Changing every held-out event (another item) changes nothing the search does:
    same trials, same values."""
    interactions = taste_groups()
    holdout, data, _ = holdout_and_search_data(interactions)
    items = interactions.items.copy()
    items[holdout.test] = np.random.default_rng(9).integers(0, N_ITEMS, holdout.test.sum())
    changed = dataclasses.replace(interactions, items=items)
    changed_data, _ = search_data(changed, holdout, fraction=0.2, n_users=N_USERS, n_items=N_ITEMS)
    config = SearchConfig(budget_seconds=8, metric="precision@10", k=10, seed=4)
    first = run_search(data, config, clock=TickClock())
    second = run_search(changed_data, config, clock=TickClock())
    assert len(first.trials) > 6
    assert first.trials == second.trials
