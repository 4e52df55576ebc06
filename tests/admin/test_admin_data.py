"""Items, events and user profiles in the admin: browsable, searchable, fast at any size
(no full COUNT), read-only; deletions only through audited actions."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from recommender.admin_data import COUNT_CAP
from recommender.models import DataErasure, ErasureKind, Event, Item, UserProfile
from tests.factories import EventFactory, ItemFactory

pytestmark = pytest.mark.django_db

VIEW = ("recommender.view_item", "recommender.view_event", "recommender.view_userprofile")


def changelist(model) -> str:
    return reverse(f"admin:recommender_{model._meta.model_name}_changelist")


def _counts(queries: list[dict], table: str) -> list[str]:
    return [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and table in q["sql"]]


@pytest.mark.parametrize("model", [Event, Item, UserProfile])
def test_list_pages_never_count_the_whole_table(staff_client, model):
    EventFactory.create_batch(5)
    UserProfile.objects.create(external_id="someone")
    client = staff_client(*VIEW)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(changelist(model))
    assert response.status_code == 200
    counts = _counts(queries.captured_queries, model._meta.db_table)
    assert counts, "the paginator counts (capped)"
    assert all("LIMIT" in sql.upper() for sql in counts), counts


def test_the_event_count_is_capped(staff_client, settings, monkeypatch):
    monkeypatch.setattr("recommender.admin_data.COUNT_CAP", 3)
    EventFactory.create_batch(6)
    response = staff_client(*VIEW).get(changelist(Event))
    assert response.context["cl"].result_count == 4  # the cap + 1: "more than 3"
    assert COUNT_CAP == 10_000


def test_events_are_searchable_by_exact_user_id_and_read_only(staff_client):
    EventFactory(user_external_id="alice", event_id="a1")
    EventFactory(user_external_id="bob", event_id="b1")
    client = staff_client(*VIEW)
    response = client.get(changelist(Event), {"q": "alice"})
    assert [e.event_id for e in response.context["cl"].result_list] == ["a1"]
    event = Event.objects.get(event_id="a1")
    page = client.get(reverse("admin:recommender_event_change", args=[event.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert (
        client.post(reverse("admin:recommender_event_delete", args=[event.pk])).status_code == 403
    )


@pytest.mark.parametrize(
    ("model", "query", "found"),
    [(Event, "alice", ["a1"]), (Event, "b1", ["b1"]), (Item, "item", ["item-a", "item-b"])],
)
def test_searches_match_ids_as_stored_with_plain_comparisons(staff_client, model, query, found):
    """Exact or prefix matches, case-sensitive like the ids: ``UPPER(column)`` (the
    admin's ``=`` and ``^``) is served by no index, a scan of 10M events (seconds)."""
    EventFactory(user_external_id="alice", event_id="a1", item=ItemFactory(external_id="item-a"))
    EventFactory(user_external_id="Alice", event_id="b1", item=ItemFactory(external_id="item-b"))
    ItemFactory(external_id="other-c")
    client = staff_client(*VIEW)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(changelist(model), {"q": query})
    rows = response.context["cl"].result_list
    assert sorted(r.event_id if model is Event else r.external_id for r in rows) == found
    table = model._meta.db_table
    searched = [q["sql"] for q in queries.captured_queries if f'FROM "{table}"' in q["sql"]]
    assert searched and not [sql for sql in searched if "UPPER(" in sql.upper()], searched


def test_django_bulk_delete_is_not_offered(staff_client):
    client = staff_client(*VIEW, "recommender.delete_event")
    response = client.get(changelist(Event))
    assert "delete_selected" not in response.content.decode()
    assert "delete_events" in response.content.decode()


def _action(client, model, action, pks, **extra):
    return client.post(
        changelist(model),
        {"action": action, "_selected_action": [str(pk) for pk in pks], "index": 0, **extra},
    )


def test_deleting_events_asks_for_a_reason_then_deletes_and_audits(staff_client):
    events = EventFactory.create_batch(3)
    client = staff_client(*VIEW, "recommender.delete_event")
    page = _action(client, Event, "delete_events", [e.pk for e in events[:2]])
    assert page.status_code == 200 and 'name="confirm"' in page.content.decode()
    assert Event.objects.count() == 3
    no_reason = _action(client, Event, "delete_events", [events[0].pk], confirm="yes", reason="")
    assert no_reason.status_code == 400 and Event.objects.count() == 3

    done = _action(
        client, Event, "delete_events", [e.pk for e in events[:2]], confirm="yes", reason="spam"
    )

    assert done.status_code == 302
    assert list(Event.objects.values_list("pk", flat=True)) == [events[2].pk]
    erasure = DataErasure.objects.get()
    assert (erasure.kind, erasure.events_deleted, erasure.reason) == (
        ErasureKind.EVENTS,
        2,
        "spam",
    )
    assert erasure.actor.get_username().startswith("staff")
    assert len(erasure.detail["events"]) == 2


def test_deleting_items_deletes_their_events_and_audits(staff_client):
    doomed, kept = ItemFactory(external_id="doomed"), ItemFactory(external_id="kept")
    EventFactory.create_batch(2, item=doomed)
    EventFactory(item=kept)
    client = staff_client(*VIEW, "recommender.delete_item")

    _action(client, Item, "delete_items", [doomed.pk], confirm="yes", reason="takedown")

    assert list(Item.objects.values_list("external_id", flat=True)) == ["kept"]
    assert Event.objects.count() == 1
    erasure = DataErasure.objects.get()
    assert (erasure.kind, erasure.items_deleted, erasure.events_deleted) == (
        ErasureKind.ITEMS,
        1,
        2,
    )
    assert erasure.detail == {"items": ["doomed"]}


def test_erasing_the_users_of_selected_events_erases_all_their_events(staff_client):
    first = EventFactory(user_external_id="alice")
    EventFactory.create_batch(2, user_external_id="alice")
    EventFactory(user_external_id="bob")
    UserProfile.objects.create(external_id="alice")
    client = staff_client(*VIEW, "recommender.delete_event")

    _action(client, Event, "erase_event_users", [first.pk], confirm="yes", reason="GDPR #7")

    assert list(Event.objects.values_list("user_external_id", flat=True)) == ["bob"]
    assert not UserProfile.objects.exists()
    erasure = DataErasure.objects.get()
    assert (erasure.kind, erasure.subject, erasure.events_deleted, erasure.profiles_deleted) == (
        ErasureKind.USER,
        "alice",
        3,
        1,
    )


def test_erasing_selected_user_profiles(staff_client):
    profile = UserProfile.objects.create(external_id="carol")
    EventFactory(user_external_id="carol")
    client = staff_client(*VIEW, "recommender.delete_event")
    _action(client, UserProfile, "erase_users", [profile.pk], confirm="yes", reason="request")
    assert not Event.objects.exists() and not UserProfile.objects.exists()
    assert DataErasure.objects.get().subject == "carol"


def test_without_the_delete_permission_nothing_is_deleted(staff_client):
    event = EventFactory()
    client = staff_client(*VIEW)
    _action(client, Event, "delete_events", [event.pk], confirm="yes", reason="x")
    _action(client, Item, "delete_items", [event.item_id], confirm="yes", reason="x")
    assert Event.objects.count() == 1 and Item.objects.count() == 1
    assert not DataErasure.objects.exists()


@pytest.mark.parametrize("order", ["", "?o=-5", "?o=2.1", "?o=0"])
def test_the_event_list_sorts_only_by_its_indexed_time(staff_client, order):
    """A column header of another column would sort every event (10 s at 10M)."""
    EventFactory.create_batch(3)
    with CaptureQueriesContext(connection) as queries:
        response = staff_client(*VIEW).get(changelist(Event) + order)
    assert response.status_code == 200
    listed = [
        q["sql"]
        for q in queries.captured_queries
        if 'FROM "recommender_event"' in q["sql"] and "ORDER BY" in q["sql"]
    ]
    assert listed
    for sql in listed:
        ordering = sql.split("ORDER BY", 1)[1]
        assert '"timestamp"' in ordering and '"client"' not in ordering, sql
        assert '"user_external_id"' not in ordering and '"item_id"' not in ordering, sql
