"""The synthetic demo dataset (numpy only, no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.demo_data import CATEGORIES, EVENT_TYPES, DemoData, generate_demo_data

END = datetime(2025, 3, 10, 15, 30, tzinfo=UTC)
USERS, ITEMS, EVENTS, DAYS = 600, 300, 30_000, 28


def make(seed: int = 42) -> DemoData:
    return generate_demo_data(
        users=USERS, items=ITEMS, events=EVENTS, seed=seed, days=DAYS, end=END
    )


@pytest.fixture(scope="module")
def data() -> DemoData:
    return make()


def test_the_same_seed_gives_the_same_dataset(data):
    again = make()

    assert again.item_titles == data.item_titles
    assert again.item_categories == data.item_categories
    assert again.user_features == data.user_features
    for name in ("event_user", "event_item", "event_type", "event_time"):
        np.testing.assert_array_equal(getattr(again, name), getattr(data, name))


def test_another_seed_gives_another_dataset(data):
    other = make(seed=7)

    assert not np.array_equal(other.event_item, data.event_item)


def test_shapes_and_ranges(data):
    assert len(data.item_titles) == len(data.item_categories) == ITEMS
    assert len(data.user_features) == USERS
    assert data.user_taste.shape == (USERS, len(CATEGORIES))
    np.testing.assert_allclose(data.user_taste.sum(axis=1), 1.0)
    for array in (data.event_user, data.event_item, data.event_type, data.event_time):
        assert array.shape == (EVENTS,)
    assert 0 <= data.event_user.min() and data.event_user.max() < USERS
    assert 0 <= data.event_item.min() and data.event_item.max() < ITEMS
    assert all(1 <= len(categories) <= 3 for categories in data.item_categories)
    assert {name for categories in data.item_categories for name in categories} <= set(CATEGORIES)
    assert len(set(data.item_titles)) > ITEMS / 2


def test_popularity_is_long_tailed(data):
    counts = np.sort(np.bincount(data.event_item, minlength=ITEMS))[::-1]

    assert counts[: ITEMS // 10].sum() > 0.35 * EVENTS  # the top 10% of items
    assert counts[0] > 10 * np.median(counts)


def test_event_types_form_a_funnel(data):
    view, click, like, purchase = np.bincount(data.event_type, minlength=len(EVENT_TYPES))

    assert view > click > like > purchase > 0


def test_timestamps_cover_the_days_before_end_in_order_with_a_daily_rhythm(data):
    times = data.event_time
    day_start = int(END.timestamp()) // 86_400 * 86_400

    assert np.all(np.diff(times) >= 0)
    assert times.min() >= day_start - DAYS * 86_400
    assert times.max() < day_start
    assert times.max() - times.min() > (DAYS - 1) * 86_400
    hours = np.bincount(times // 3_600 % 24, minlength=24)
    assert hours[19:22].sum() > 3 * hours[2:5].sum()


def test_a_collaborative_model_beats_popularity(data):
    """Item-item cosine on the first 80% of time vs popularity, precision@10 on the rest."""
    cut = np.quantile(data.event_time, 0.8)
    train = data.event_time < cut

    def matrix(mask: np.ndarray) -> sp.csr_matrix:
        m = sp.csr_matrix(
            (np.ones(mask.sum()), (data.event_user[mask], data.event_item[mask])),
            shape=(USERS, ITEMS),
        )
        m.data[:] = 1.0
        return m

    seen, future = matrix(train), matrix(~train)
    future = (future - future.multiply(seen)).tocsr()
    future.eliminate_zeros()
    norms = np.sqrt(np.asarray(seen.sum(axis=0))).ravel() + 1e-9
    similarity = (seen.T @ seen).toarray() / np.outer(norms, norms)
    np.fill_diagonal(similarity, 0)

    def precision(scores: np.ndarray) -> float:
        scores = np.where(seen.toarray() > 0, -np.inf, scores)
        top = np.argsort(-scores, axis=1)[:, :10]
        users = np.flatnonzero(np.diff(future.indptr))
        truth = future.toarray()
        return float(np.mean([truth[user, top[user]].sum() / 10 for user in users]))

    popularity = np.tile(np.asarray(seen.sum(axis=0)).ravel(), (USERS, 1))
    collaborative = seen @ similarity

    assert precision(collaborative) > 2 * precision(popularity)


def test_arguments_must_be_positive():
    with pytest.raises(ValueError):
        generate_demo_data(users=0, items=10, events=10, seed=1, days=1, end=END)
