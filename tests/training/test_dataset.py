"""training.dataset: reading the training window out of the database."""

from datetime import UTC, datetime

import pytest

from recommender.models import Recommender
from tests.factories import EventFactory, ItemFactory
from training.dataset import events_load, training_database

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def test_rows_with_an_unusable_weight_are_skipped_and_counted_never_fatal(settings):
    settings.RECSITE_EVENT_WEIGHT_MAX = 100
    item = ItemFactory()
    # (NaN is left out: SQLite stores it as NULL.)
    for weight in (None, 2.0, 100.0, 1e39, float("inf"), 0.0, -1.0, 101.0):
        EventFactory(item=item, weight=weight, timestamp=datetime(2024, 6, 1, tzinfo=UTC))
    recommender = Recommender.objects.get(name="default")
    recommender.event_weights = {"view": 1.0}

    events = events_load(recommender=recommender, now=NOW)

    assert sorted(events.weights.tolist()) == [1.0, 2.0, 100.0]
    assert events.invalid_weights == 5


def test_an_effective_weight_beyond_float32_is_skipped(settings):
    settings.RECSITE_EVENT_WEIGHT_MAX = 100
    EventFactory(weight=50.0, timestamp=datetime(2024, 6, 1, tzinfo=UTC))
    EventFactory(weight=1.0, timestamp=datetime(2024, 6, 1, tzinfo=UTC))
    recommender = Recommender.objects.get(name="default")
    recommender.event_weights = {"view": 1e37}

    events = events_load(recommender=recommender, now=NOW)

    assert len(events) == 1 and events.invalid_weights == 1


def test_without_a_training_database_url_training_reads_the_primary_up_to_now():
    EventFactory(timestamp=datetime(2024, 6, 1, tzinfo=UTC))
    recommender = Recommender.objects.get(name="default")

    events = events_load(recommender=recommender, now=NOW)

    assert training_database() == "default"
    assert (events.source, events.window_end, len(events)) == ("primary", NOW, 1)
