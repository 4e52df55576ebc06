import numpy as np
import pytest

from training.pipeline.matrices import Interactions
from training.pipeline.split import split_global, split_matrices, split_per_user


def _inter(rows: list[tuple[int, int, float]]) -> Interactions:
    """rows of (user, item, timestamp); weight 1."""
    arr = np.array(rows, dtype=np.float64).reshape(-1, 3)
    return Interactions(
        arr[:, 0].astype(np.int64),
        arr[:, 1].astype(np.int64),
        np.ones(len(arr), dtype=np.float32),
        arr[:, 2],
    )


def test_per_user_holds_out_most_recent_fraction():
    # user 0: 10 events on items 0..9 at times 9..0 (newest on item 0) -> 2 test: items 0, 1
    # user 1: 2 events -> 1 test (newest), user 2: 1 event -> all train
    # users 3..12: one event each on items 0..9, so every item is seen in train
    rows = [(0, i, 9 - i) for i in range(10)] + [(1, 2, 5), (1, 3, 1), (2, 4, 0)]
    rows += [(3 + i, i, 0) for i in range(10)]
    split = split_per_user(_inter(rows), fraction=0.2)
    assert np.flatnonzero(split.test).tolist() == [0, 1, 10]
    assert split.train.tolist() == [not t for t in split.test]
    assert split.stats.n_test == 3
    assert split.stats.n_train == 20
    assert split.stats.test_users == 2


def test_per_user_equal_timestamps_keep_input_order():
    split = split_per_user(_inter([(0, 0, 5), (0, 1, 5), (0, 2, 5), (1, 2, 0)]), fraction=0.2)
    assert split.test.tolist() == [False, False, True, False]


def test_per_user_drops_test_items_never_seen_in_train():
    # user 0's newest event is item 9, which is in nobody's train
    rows = [(0, 0, 0), (0, 9, 1), (1, 0, 0), (1, 1, 1), (2, 1, 0), (2, 0, 1)]
    split = split_per_user(_inter(rows), fraction=0.2)
    assert split.train.tolist() == [True, False, True, False, True, False]
    assert split.test.tolist() == [False, False, False, True, False, True]
    assert split.stats.dropped_unseen_item == 1
    assert split.stats.test_users == 2


def test_per_user_drops_a_test_pair_already_in_train():
    split = split_per_user(_inter([(0, 0, 0), (0, 1, 1), (0, 0, 2)]), fraction=0.2)
    assert split.train.tolist() == [True, True, False]
    assert not split.test.any()
    assert split.stats.dropped_seen_pair == 1


def test_global_cutoff_splits_on_time_and_excludes_cold_users():
    rows = [
        (0, 0, 1),
        (0, 1, 2),
        (1, 1, 3),
        (0, 2, 10),  # test, item 2 unseen in train -> dropped
        (0, 1, 11),  # test, pair (0, 1) already in train -> dropped
        (1, 0, 12),  # test, kept
        (2, 0, 13),  # test, user 2 has no train -> cold, dropped
        (2, 1, 14),  # cold
    ]
    split = split_global(_inter(rows), cutoff=10)
    assert split.train.tolist() == [True, True, True, False, False, False, False, False]
    assert split.test.tolist() == [False, False, False, False, False, True, False, False]
    s = split.stats
    assert (s.dropped_unseen_item, s.dropped_seen_pair, s.dropped_cold_user) == (1, 1, 2)
    assert s.excluded_cold_users == 1
    assert s.test_users == 1


def test_split_matrices_builds_train_and_test_of_same_shape():
    rows = [(0, 0, 0), (0, 1, 1), (1, 1, 0), (1, 0, 5)]
    inter = _inter(rows)
    train, test = split_matrices(inter, split_global(inter, cutoff=5), 3, 4)
    assert train.shape == test.shape == (3, 4)
    assert train.toarray()[:2, :2].tolist() == [[1, 1], [0, 1]]
    assert test.toarray()[:2, :2].tolist() == [[0, 0], [1, 0]]


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1])
def test_per_user_rejects_fractions_outside_unit_interval(fraction):
    with pytest.raises(ValueError):
        split_per_user(_inter([(0, 0, 0)]), fraction=fraction)
