"""The attribution pass on the database: served lists recorded through the recording API,
events through ingest, the pass with an injected ``now``."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from recommender.models import Event
from recommender.online import attribution, recording
from recommender.online.attribution import SETTLE, attribution_run
from recommender.online.ids import recommendation_id_new
from recommender.online.models import (
    AttributionCursor,
    Experiment,
    ExperimentUserStat,
    OnlineHourly,
    ServedList,
)
from recommender.online.retention import served_lists_retain
from recommender.services import event_batch_ingest, user_erase
from tests.factories import RecommenderFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
INGESTED = T0 + timedelta(days=3)  # when the events are stored
NOW = INGESTED + SETTLE


@pytest.fixture(autouse=True)
def recommender():
    return RecommenderFactory(
        name="default", click_event_types=["click"], conversion_event_types=["purchase"]
    )


def serve(at=T0, user="u1", items=("a", "b", "c"), **extra):
    list_id = recommendation_id_new()
    recording.served_list_record(
        recommendation_id=list_id,
        recommender="default",
        model_version=extra.pop("model_version", 4),
        user_id=user,
        item_ids=list(items),
        created_at=at,
        **extra,
    )
    recording.flush()
    return list_id


_counter = iter(range(1_000_000))


def send(*events):
    raw = [
        {
            "event_id": event.get("event_id", f"e{next(_counter)}"),
            "user_id": event.get("user", "u1"),
            "item_id": event.get("item", "b"),
            "type": event.get("type", "click"),
            "timestamp": event["at"].isoformat(),
            **({"recommendation_id": str(event["names"])} if "names" in event else {}),
        }
        for event in events
    ]
    result = event_batch_ingest(raw_events=raw, now=INGESTED)
    Event.objects.update(ingested_at=INGESTED)
    return result


def hourly(**filters):
    rows = OnlineHourly.objects.filter(**filters)
    return {
        (row.position, name): getattr(row, name)
        for row in rows
        for name in ("lists", "impressions", "clicks", "conversions")
        if getattr(row, name)
    }


def test_clicks_and_conversions_count_at_their_position_in_the_lists_hour():
    serve()
    send(
        {"at": T0 + timedelta(minutes=70), "item": "b", "type": "click"},
        {"at": T0 + timedelta(minutes=80), "item": "c", "type": "purchase"},
        {"at": T0 + timedelta(minutes=90), "item": "a", "type": "view"},
    )
    result = attribution_run(now=NOW)
    assert (result.lists, result.events, result.attributed) == (1, 3, 3)
    assert hourly(hour=T0, model_version=4) == {
        (1, "lists"): 1,
        (1, "impressions"): 1,
        (2, "impressions"): 1,
        (3, "impressions"): 1,
        (2, "clicks"): 1,
        (3, "conversions"): 1,
    }


def test_an_event_naming_a_real_list_is_credited_to_it_over_a_later_list():
    named = serve(at=T0, items=("a", "b"))
    serve(at=T0 + timedelta(hours=2), items=("b", "a"))
    send({"at": T0 + timedelta(hours=3), "item": "b", "names": named})
    attribution_run(now=NOW)
    assert OnlineHourly.objects.get(hour=T0, clicks=1).position == 2


def test_unknown_recommendation_ids_are_counted_never_an_error():
    serve()
    send(
        {"at": T0 + timedelta(hours=1), "names": recommendation_id_new()},
        {"at": T0 + timedelta(hours=1), "item": "zzz", "names": "not-a-uuid"},
    )
    result = attribution_run(now=NOW)
    assert (result.unknown_ids, result.attributed, result.unattributed) == (2, 1, 1)
    assert AttributionCursor.objects.get().unknown_ids == 2


def test_an_event_before_any_list_is_not_attributed():
    send({"at": T0 - timedelta(seconds=1)})
    serve(at=T0)
    result = attribution_run(now=NOW)
    assert (result.attributed, result.unattributed) == (0, 1)
    assert not OnlineHourly.objects.filter(clicks__gt=0).exists()


def test_the_window_edge_is_included_and_a_moment_later_is_not(settings):
    settings.RECSITE_ATTRIBUTION_WINDOW_SECONDS = 3600
    serve(user="edge")
    serve(user="late")
    send(
        {"at": T0 + timedelta(hours=1), "user": "edge"},
        {"at": T0 + timedelta(hours=1, milliseconds=1), "user": "late"},
    )
    assert attribution_run(now=NOW).attributed == 1


def test_replayed_events_and_repeated_passes_count_once():
    serve()
    batch = {"at": T0 + timedelta(hours=1), "event_id": "same"}
    send(batch)
    send(batch)  # the client resends: stored once at ingest
    first = attribution_run(now=NOW)
    second = attribution_run(now=NOW + timedelta(hours=1))
    assert (first.events, first.lists, second.events, second.lists) == (1, 1, 0, 0)
    assert OnlineHourly.objects.get(position=2).clicks == 1


def test_rows_newer_than_the_settle_time_wait_for_a_later_pass():
    serve(at=INGESTED)
    send({"at": INGESTED})
    early = attribution_run(now=INGESTED + SETTLE - timedelta(seconds=1))
    assert (early.lists, early.events) == (0, 0)
    later = attribution_run(now=NOW)
    assert (later.lists, later.events, later.attributed) == (1, 1, 1)


def test_a_pass_resumes_where_the_last_one_stopped(monkeypatch):
    monkeypatch.setattr(attribution, "EVENTS_PER_BATCH", 2)
    monkeypatch.setattr(attribution, "LISTS_PER_BATCH", 2)
    for minute in range(3):
        serve(at=T0 + timedelta(minutes=minute))
    send(*({"at": T0 + timedelta(hours=1)} for _ in range(5)))
    result = attribution_run(now=NOW)
    assert (result.lists, result.events) == (3, 5)
    assert OnlineHourly.objects.get(position=1).lists == 3
    assert OnlineHourly.objects.get(position=2).clicks == 5


def test_experiment_lists_count_per_user_and_arm(recommender):
    experiment = Experiment.objects.create(
        recommender=recommender, name="x", salt="s", started_at=T0
    )
    serve(user="u1", experiment_id=experiment.pk, arm="treatment-1")
    serve(user="u2", experiment_id=experiment.pk, arm="control", items=("a",))
    send({"at": T0 + timedelta(hours=1), "user": "u1"})
    attribution_run(now=NOW)
    stats = {
        (s.arm, s.user_external_id): (s.impressions, s.clicks)
        for s in ExperimentUserStat.objects.all()
    }
    assert stats == {("treatment-1", "u1"): (3, 1), ("control", "u2"): (1, 0)}
    assert OnlineHourly.objects.get(arm="treatment-1", position=2).clicks == 1


def test_retention_deletes_lists_older_than_the_retention_in_batches(settings):
    settings.RECSITE_SERVED_RETENTION_DAYS = 30
    for day in range(5):
        serve(at=T0 - timedelta(days=31 + day))
    kept = serve(at=T0 - timedelta(days=29))
    assert served_lists_retain(now=T0, batch_size=2) == 5
    assert list(ServedList.objects.values_list("pk", flat=True)) == [kept]


def test_erasing_a_user_erases_their_served_lists_and_experiment_counts(recommender):
    experiment = Experiment.objects.create(
        recommender=recommender, name="x", salt="s", started_at=T0
    )
    serve(user="gone", experiment_id=experiment.pk, arm="control")
    serve(user="stays")
    attribution_run(now=NOW)
    erasure = user_erase(user_id="gone")
    assert list(ServedList.objects.values_list("user_external_id", flat=True)) == ["stays"]
    assert not ExperimentUserStat.objects.exists()
    assert erasure.detail["served_lists_deleted"] == 1


def test_the_command_runs_one_pass_and_says_what_it_read():
    out = StringIO()
    call_command("attribute_events", stdout=out)
    assert "served lists" in out.getvalue() and "events read" in out.getvalue()
