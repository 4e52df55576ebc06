"""Event retention: the rule (retention vs training windows vs the attribution cursor),
batched deletes with an audit row, resuming, the command and the beat task. ``now`` is
injected everywhere (the beat task's clock is the only wall-clock read, and its test
places events relative to it with years of margin)."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from recommender.models import DataErasure, ErasureKind, Event, Recommender
from recommender.online.attribution import CURSOR_NAME, SETTLE, attribution_run
from recommender.online.models import AttributionCursor
from recommender.services import events_prune
from recommender.services.events_retention import RetentionOutcome, event_retention_plan
from tests.factories import EventFactory, ItemFactory, RecommenderFactory
from training.tasks import prune_events

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 6, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def retention(settings):
    settings.RECSITE_EVENT_RETENTION_DAYS = 30
    settings.RECSITE_EVENT_RETENTION_LIMITS_ALL_HISTORY = False
    Recommender.objects.update(window_days=10)
    return settings


def events(*ages_in_days: float) -> list[Event]:
    item = ItemFactory()
    return [EventFactory(item=item, timestamp=NOW - timedelta(days=age)) for age in ages_in_days]


def cursor_at(event_id: int) -> None:
    AttributionCursor.objects.update_or_create(
        name=CURSOR_NAME, defaults={"last_event_id": event_id}
    )


def cursor_past_everything() -> None:
    cursor_at(Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 1)


def ages() -> list[int]:
    return sorted(round((NOW - e.timestamp) / timedelta(days=1)) for e in Event.objects.all())


def test_unset_retention_deletes_nothing(retention):
    retention.RECSITE_EVENT_RETENTION_DAYS = None
    events(400, 1)
    cursor_past_everything()
    result = events_prune(now=NOW)
    assert result.outcome == RetentionOutcome.OFF
    assert Event.objects.count() == 2
    assert not DataErasure.objects.exists()


def test_events_older_than_the_retention_go_and_newer_stay():
    events(31, 45, 29, 1)
    cursor_past_everything()
    result = events_prune(now=NOW)
    assert result.outcome == RetentionOutcome.DELETED
    assert result.deleted == 2
    assert ages() == [1, 29]


def test_a_longer_training_window_keeps_its_events():
    RecommenderFactory(name="long", window_days=60)
    events(31, 59, 61, 90)
    cursor_past_everything()
    result = events_prune(now=NOW)
    assert result.plan.longest_window_days == 60
    assert result.plan.cutoff == NOW - timedelta(days=60)
    assert ages() == [31, 59]


def test_a_recommender_on_all_history_blocks_deletion():
    RecommenderFactory(name="forever", window_days=None)
    events(400)
    cursor_past_everything()
    result = events_prune(now=NOW)
    assert result.outcome == RetentionOutcome.BLOCKED
    assert "forever" in result.summary()
    assert Event.objects.count() == 1


def test_all_history_is_limited_only_when_the_setting_says_so(retention):
    retention.RECSITE_EVENT_RETENTION_LIMITS_ALL_HISTORY = True
    RecommenderFactory(name="forever", window_days=None)
    events(400, 1)
    cursor_past_everything()
    assert events_prune(now=NOW).deleted == 1
    assert ages() == [1]


def test_events_the_attribution_pass_has_not_read_stay():
    old = events(100, 90, 80)
    cursor_at(old[1].pk)
    assert events_prune(now=NOW).deleted == 2
    assert list(Event.objects.values_list("pk", flat=True)) == [old[2].pk]


def test_nothing_goes_before_the_attribution_pass_ever_ran():
    events(100)
    result = events_prune(now=NOW)
    assert result.outcome == RetentionOutcome.BLOCKED
    assert "attribution" in result.plan.why
    assert Event.objects.count() == 1


def test_each_batch_deletes_by_key_with_its_audit_row():
    events(*range(40, 47))
    cursor_past_everything()
    with CaptureQueriesContext(connection) as queries:
        result = events_prune(now=NOW, batch_size=3)
    assert (result.deleted, result.batches) == (7, 3)
    deletes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]
    assert len(deletes) == 3
    assert all("SELECT" not in sql for sql in deletes), "by key, never a subquery join"
    erasure = DataErasure.objects.get()
    assert erasure.kind == ErasureKind.EXPIRED
    assert erasure.events_deleted == 7
    assert erasure.actor_label == "beat"
    assert erasure.detail["cutoff"] == (NOW - timedelta(days=30)).isoformat()


def test_a_pass_stopped_at_its_batch_limit_is_resumed_by_the_next():
    events(*range(40, 50))
    cursor_past_everything()
    first = events_prune(now=NOW, batch_size=4, max_batches=1)
    assert (first.deleted, first.complete) == (4, False)
    second = events_prune(now=NOW, batch_size=4)
    assert (second.deleted, second.complete) == (6, True)
    assert not Event.objects.exists()
    assert sorted(DataErasure.objects.values_list("events_deleted", flat=True)) == [4, 6]


def test_dry_run_counts_and_deletes_nothing():
    events(40, 50, 1)
    cursor_past_everything()
    result = events_prune(now=NOW, dry_run=True)
    assert (result.outcome, result.deleted) == (RetentionOutcome.DRY_RUN, 2)
    assert Event.objects.count() == 3
    assert not DataErasure.objects.exists()


def test_nothing_old_enough_writes_no_audit_row():
    events(1, 2)
    cursor_past_everything()
    result = events_prune(now=NOW)
    assert (result.outcome, result.deleted) == (RetentionOutcome.NOTHING, 0)
    assert not DataErasure.objects.exists()


def test_attribution_goes_on_after_old_events_are_pruned(settings):
    """The pass reads keys above its cursor: deleting keys below it (all retention may
    delete) neither fails it nor makes it skip the new events."""
    item = ItemFactory(external_id="b")
    old = [EventFactory(item=item, timestamp=NOW - timedelta(days=100)) for _ in range(3)]
    Event.objects.update(ingested_at=NOW - timedelta(days=100))
    attribution_run(now=NOW)
    assert AttributionCursor.objects.get().last_event_id == old[-1].pk
    new = [EventFactory(item=item, timestamp=NOW) for _ in range(2)]
    Event.objects.filter(pk__in=[e.pk for e in new]).update(ingested_at=NOW)
    assert events_prune(now=NOW).deleted == 3
    result = attribution_run(now=NOW + SETTLE)
    assert result.events == 2
    assert AttributionCursor.objects.get().last_event_id == new[-1].pk


def test_the_plan_names_its_bounds():
    events(1)
    cursor_past_everything()
    plan = event_retention_plan(now=NOW)
    assert plan.retention_days == 30
    assert plan.longest_window_days == 10
    assert plan.up_to_event_id == Event.objects.get().pk


def far_from_the_wall_clock() -> None:
    """One event years past the cutoff and one years ahead of the clock: what the command
    and the task (which read the clock) delete does not depend on when they run."""
    item = ItemFactory()
    EventFactory(item=item, timestamp=timezone.now() - timedelta(days=3000))
    EventFactory(item=item, timestamp=timezone.now() + timedelta(days=3000))
    cursor_past_everything()


def test_command_prunes_and_dry_runs():
    far_from_the_wall_clock()
    out = StringIO()
    call_command("prune_events", "--dry-run", stdout=out)
    assert "1 events would be deleted" in out.getvalue()
    assert Event.objects.count() == 2
    call_command("prune_events", "--batch-size", "5", stdout=out)
    assert Event.objects.count() == 1
    assert DataErasure.objects.get().actor_label == "manage.py prune_events"


def test_command_exits_3_when_blocked():
    RecommenderFactory(name="forever", window_days=None)
    with pytest.raises(SystemExit) as exited:
        call_command("prune_events", stdout=StringIO())
    assert exited.value.code == 3


def test_the_beat_task_prunes():
    far_from_the_wall_clock()
    prune_events.apply()
    assert Event.objects.count() == 1
