"""training.event_copy: the binary COPY reader, against the row iterator it replaces."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from recommender.models import Recommender
from tests.factories import EventFactory, ItemFactory
from training.dataset import events_iterate, events_load
from training.event_copy import _HEADER, _Columns, events_copy, hash_positions

END = datetime(2025, 1, 1, tzinfo=UTC)
START = END - timedelta(days=30)


def _row(user: int, item: int, kind: int, weight: float | None, ts: int, pk: int = 1) -> bytes:
    return (
        struct.pack(">h", 7)
        + struct.pack(">iq", 8, user)
        + struct.pack(">iq", 8, item)
        + struct.pack(">ii", 4, kind)
        + struct.pack(">i?", 1, weight is None)
        + struct.pack(">id", 8, 0.0 if weight is None else weight)
        + struct.pack(">iq", 8, ts)
        + struct.pack(">iq", 8, pk)
    )


def _stream(rows: list[bytes]) -> bytes:
    return _HEADER + struct.pack(">ii", 0, 0) + b"".join(rows) + b"\xff\xff"


def test_rows_are_parsed_whatever_the_write_boundaries():
    stream = _stream([_row(0, 10, 1, None, 100), _row(1, 11, 0, 2.5, 101), _row(0, 12, 1, 1.0, -5)])
    sink = _Columns()
    for i in range(len(stream)):  # the worst case: one byte per write
        sink.write(stream[i : i + 1])

    columns = sink.columns()

    assert columns["user"].tolist() == [0, 1, 0]
    assert columns["item"].tolist() == [10, 11, 12]
    assert columns["type"].tolist() == [1, 0, 1]
    assert columns["weight_is_null"].tolist() == [True, False, False]
    assert columns["weight"].tolist()[1:] == [2.5, 1.0]
    assert columns["ts"].tolist() == [100, 101, -5]


def test_a_stream_cut_inside_a_row_or_of_another_layout_is_refused():
    cut = _stream([_row(0, 1, 0, None, 1)])[:-10]
    sink = _Columns()
    sink.write(cut)
    with pytest.raises(ValueError, match="ended inside a row"):
        sink.columns()

    other = _Columns()
    other.write(
        _stream([_row(0, 1, 0, None, 1).replace(struct.pack(">h", 7), struct.pack(">h", 8), 1)])
    )
    with pytest.raises(ValueError, match="layout"):
        other.columns()


def test_hash_positions_are_each_values_index_among_the_distinct_hashes():
    hashes = np.array([40, -7, 2**62, 0], dtype=np.int64)
    values = np.array([0, 40, 40, 2**62, -7], dtype=np.int64)
    assert hash_positions(hashes, values).tolist() == [3, 0, 0, 2, 1]
    assert hash_positions(hashes, values[:0]).tolist() == []
    with pytest.raises(ValueError, match="not among"):
        hash_positions(hashes, np.array([5], dtype=np.int64))


@pytest.mark.django_db
def test_copy_and_the_row_iterator_read_the_same_columns(postgres):
    """Unicode and long ids, unweighted types, missing and unusable weights, fractional
    and pre-1970 timestamps: the two readers agree on every column."""
    items = [ItemFactory() for _ in range(3)]
    users = ["zoë", "Zed", "a" * 255, "user-1", "ünïcode-ß", "b"]
    rng = np.random.default_rng(3)
    weights = [None, 2.0, 100.0, 1e39, float("inf"), float("nan"), 0.0, -1.0, 0.25]
    for i in range(60):
        EventFactory(
            user_external_id=users[i % len(users)],
            item=items[i % 3],
            event_type=("view", "like", "ignored")[i % 3],
            weight=weights[i % len(weights)],
            timestamp=START + timedelta(seconds=float(rng.uniform(1, 86_400 * 29)), microseconds=7),
        )
    EventFactory(timestamp=datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC))

    copied = events_copy(alias="default", start=None, end=END, event_types=["like", "view"])
    iterated = events_iterate("default", None, END, ["like", "view"])

    assert copied.users.tolist() == iterated.users.tolist() == sorted(set(copied.users))
    for name in ("user_codes", "item_pks", "type_codes", "has_own_weight", "timestamps"):
        assert getattr(copied, name).tolist() == getattr(iterated, name).tolist(), name
    has = copied.has_own_weight
    np.testing.assert_array_equal(copied.own_weights[has], iterated.own_weights[has])
    assert copied.ignored_types == iterated.ignored_types == {"ignored": 20}


@pytest.mark.django_db
def test_events_load_codes_only_the_users_whose_events_are_kept(postgres, settings):
    settings.RECSITE_EVENT_WEIGHT_MAX = 100
    item = ItemFactory()
    EventFactory(user_external_id="kept", item=item, weight=2.0, timestamp=END - timedelta(days=1))
    EventFactory(
        user_external_id="dropped", item=item, weight=1e9, timestamp=END - timedelta(days=1)
    )
    recommender = Recommender.objects.get(name="default")
    recommender.event_weights = {"view": 1.0}

    events = events_load(recommender=recommender, now=END)

    assert events.users.tolist() == ["kept"] and events.user_codes.tolist() == [0]
    assert events.invalid_weights == 1 and events.weights.tolist() == [2.0]
