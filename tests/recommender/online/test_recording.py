"""Recording served lists: buffered per process, written by flush() in one batch (COPY on
PostgreSQL), drops counted, never an exception to the caller."""

import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection
from prometheus_client import REGISTRY

from recommender.online import recording
from recommender.online.ids import recommendation_id_new
from recommender.online.models import ServedList
from tests.factories import RecommenderFactory

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def dropped(reason: str) -> float:
    value = REGISTRY.get_sample_value("recsite_served_lists_dropped_total", {"reason": reason})
    return value or 0.0


def record(recommender="default", **overrides) -> bool:
    values = {
        "recommendation_id": recommendation_id_new(),
        "recommender": recommender,
        "model_version": 3,
        "user_id": "u-1",
        "item_ids": ["a", "b", "c"],
        "created_at": T0,
    }
    return recording.served_list_record(**(values | overrides))


@pytest.mark.django_db
def test_flush_writes_the_buffered_lists_with_their_items_positions_and_sources():
    RecommenderFactory(name="default")
    list_id = recommendation_id_new()
    assert record(
        recommendation_id=list_id,
        item_ids=["x", "y"],
        sources=["model", "popularity"],
        first_position=11,
        arm="treatment-1",
    )
    assert record(kind="similar", user_id="", model_version=None, sources="model")
    assert ServedList.objects.count() == 0  # nothing written on the caller's path

    assert recording.flush() == 2

    stored = ServedList.objects.get(pk=list_id)
    assert (stored.item_ids, stored.sources, stored.first_position) == (
        ["x", "y"],
        ["model", "popularity"],
        11,
    )
    assert (stored.model_version, stored.arm, stored.user_external_id) == (3, "treatment-1", "u-1")
    assert stored.created_at == T0
    similar = ServedList.objects.exclude(pk=list_id).get()
    assert (similar.kind, similar.model_version, similar.sources) == (
        "similar",
        None,
        ["model"] * 3,
    )
    assert len(recording.buffer) == 0


@pytest.mark.django_db
def test_ids_and_items_with_copy_special_characters_are_stored_as_sent(postgres):
    RecommenderFactory(name="default")
    odd = ["tab\there", "back\\slash", 'quote"d', "new\nline", "ünïcødé/42"]
    record(user_id="user\\with\ttab", item_ids=odd, arm="a\\b")
    assert recording.flush() == 1
    stored = ServedList.objects.get()
    assert (stored.item_ids, stored.user_external_id, stored.arm) == (
        odd,
        "user\\with\ttab",
        "a\\b",
    )


@pytest.mark.django_db
def test_a_full_buffer_drops_the_new_list_and_counts_it(settings):
    RecommenderFactory(name="default")
    settings.RECSITE_SERVED_BUFFER_MAX = 2
    before = dropped("buffer_full")
    assert [record(), record(), record()] == [True, True, False]
    assert dropped("buffer_full") == before + 1
    assert recording.flush() == 2
    assert ServedList.objects.count() == 2


@pytest.mark.django_db
def test_a_batch_the_database_refuses_is_dropped_counted_and_the_next_one_is_written():
    RecommenderFactory(name="default")
    same = recommendation_id_new()
    record(recommendation_id=same)
    record(recommendation_id=same)  # a duplicate key: the whole batch is refused
    before = dropped("database_error")
    assert recording.flush() == 0
    assert dropped("database_error") == before + 2
    assert ServedList.objects.count() == 0

    record()
    assert recording.flush() == 1
    assert ServedList.objects.count() == 1


@pytest.mark.django_db
def test_lists_of_an_unknown_recommender_are_dropped_and_counted():
    RecommenderFactory(name="default")
    before = dropped("unknown_recommender")
    record(recommender="nope")
    record()
    assert recording.flush() == 1
    assert dropped("unknown_recommender") == before + 1


def test_a_malformed_record_is_dropped_without_raising():
    before = dropped("invalid")
    assert record(item_ids=["a", "b"], sources=["model"]) is False
    assert record(item_ids=None) is False
    assert dropped("invalid") == before + 2
    assert len(recording.buffer) == 0


def test_recording_never_touches_the_database():
    """No ``db`` fixture: pytest-django fails any query made here."""
    assert record(recommendation_id=uuid.uuid4())
    assert len(recording.buffer) == 1


@pytest.mark.django_db(transaction=True)
def test_the_flusher_thread_writes_the_buffer_off_the_callers_thread(postgres):
    RecommenderFactory(name="default")
    ids = {recommendation_id_new() for _ in range(3)}
    for list_id in ids:
        record(recommendation_id=list_id)
    flusher = recording.ServedListBuffer()
    flusher._records.extend(recording.buffer.take())
    flusher.start(interval=0.05)
    try:
        deadline = time.monotonic() + 60
        while ServedList.objects.count() < 3 and time.monotonic() < deadline:
            threading.Event().wait(0.05)
    finally:
        flusher.stop()
    assert set(ServedList.objects.values_list("pk", flat=True)) == ids
    connection.close()


@pytest.mark.django_db
def test_with_recording_off_nothing_is_buffered_written_or_counted_as_dropped(settings):
    RecommenderFactory(name="default")
    settings.RECSITE_SERVED_RECORDING = False
    before = {reason: dropped(reason) for reason in ("buffer_full", "invalid")}
    assert record() is False
    assert len(recording.buffer) == 0
    assert recording.flush() == 0
    assert ServedList.objects.count() == 0
    assert {reason: dropped(reason) for reason in before} == before
