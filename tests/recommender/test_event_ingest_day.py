"""Events ingested per day are counted by the write itself (the dashboard reads a row per
day instead of counting events), and the migration backfills them from stored events."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps

from recommender.exceptions import EventBatchInvalid
from recommender.models import Event, EventIngestDay
from recommender.services.ingest import event_batch_ingest
from tests.factories import EventFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 3, 10, 12, tzinfo=UTC)


def _events(prefix: str, n: int) -> list[dict]:
    return [
        {
            "event_id": f"{prefix}-{k}",
            "user_id": "alice",
            "item_id": f"item-{k % 3}",
            "type": "view",
            "timestamp": (NOW - timedelta(hours=k)).isoformat(),
        }
        for k in range(n)
    ]


def _days_around_ingest(run):
    before = datetime.now(UTC).date()
    result = run()
    return result, {before, datetime.now(UTC).date()}


def test_ingest_adds_the_new_events_to_the_day_and_replays_add_nothing():
    first, days = _days_around_ingest(
        lambda: event_batch_ingest(raw_events=_events("a", 5), now=NOW)
    )
    replay = event_batch_ingest(raw_events=_events("a", 7), now=NOW)  # 5 duplicates, 2 new
    assert (first.created, replay.created, replay.duplicates) == (5, 2, 5)
    rows = list(EventIngestDay.objects.values_list("day", "events"))
    assert sum(n for _, n in rows) == 7 == Event.objects.count()
    assert {day for day, _ in rows} <= days


def test_a_refused_batch_counts_nothing():
    bad = [*_events("b", 2), {"event_id": "x", "user_id": "u", "item_id": "i"}]
    with pytest.raises(EventBatchInvalid):
        event_batch_ingest(raw_events=bad, now=NOW)
    assert not EventIngestDay.objects.exists()


def test_the_migration_backfills_the_stored_events_per_day():
    for days_ago, n in ((3, 2), (0, 4)):
        ids = [e.pk for e in EventFactory.create_batch(n)]
        Event.objects.filter(pk__in=ids).update(ingested_at=NOW - timedelta(days=days_ago))
    EventIngestDay.objects.all().delete()
    migration = importlib.import_module("recommender.migrations.0016_event_ingest_day")
    migration.backfill(apps, None)
    assert dict(EventIngestDay.objects.values_list("day", "events")) == {
        (NOW - timedelta(days=3)).date(): 2,
        NOW.date(): 4,
    }
