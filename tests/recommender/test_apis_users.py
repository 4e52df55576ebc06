"""DELETE /api/v1/users/{user_id}: a data-subject erasure, audited, effective at once."""

from datetime import UTC, datetime

import pytest

from recommender.models import (
    DataErasure,
    ErasureKind,
    Event,
    Item,
    Recommender,
    Scope,
    UserProfile,
)
from recommender.serving.registry import registry
from recommender.serving.signal import active_version_token
from tests.factories import EventFactory
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec

pytestmark = pytest.mark.django_db

URL = "/api/v1/users/{}"


@pytest.fixture
def writer(make_api_client):
    return make_api_client(Scope.EVENTS_WRITE)


def test_erasing_a_user_deletes_their_events_and_profile_and_writes_an_audit_row(writer):
    for n in range(3):
        EventFactory(user_external_id="alice", event_id=f"a{n}")
    EventFactory(user_external_id="bob", event_id="b0")
    UserProfile.objects.create(external_id="alice", features=["age:25-34"])

    response = writer.delete(URL.format("alice") + "?reason=ticket-42")

    assert response.status_code == 204 and response.content == b""
    assert list(Event.objects.values_list("user_external_id", flat=True)) == ["bob"]
    assert not UserProfile.objects.filter(external_id="alice").exists()
    erasure = DataErasure.objects.get()
    assert (erasure.kind, erasure.subject, erasure.events_deleted, erasure.profiles_deleted) == (
        ErasureKind.USER,
        "alice",
        3,
        1,
    )
    assert erasure.reason == "ticket-42"
    assert erasure.actor_label.startswith("api-key:") and "test-client" in erasure.actor_label


def test_erasing_an_unknown_user_is_a_204_and_is_recorded(writer):
    response = writer.delete(URL.format("nobody"))
    assert response.status_code == 204
    assert DataErasure.objects.get().events_deleted == 0


def test_an_overlong_user_id_is_a_400(writer):
    response = writer.delete(URL.format("x" * 256))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert not DataErasure.objects.exists()


def test_after_erasure_serving_treats_the_user_as_unknown_and_forgets_their_history(
    writer, make_api_client, settings, tmp_path
):
    """user-0 is known to the model and has seen item-0..2 (training) and item-10 (since).
    After the erasure the user is an unknown user: popularity, nothing filtered as seen."""
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    spec = default_spec()
    create_catalog(spec)
    create_version(spec)
    EventFactory(
        user_external_id="user-0",
        item=Item.objects.get(external_id="item-10"),
        timestamp=datetime(2030, 1, 1, tzinfo=UTC),
    )
    reader = make_api_client(Scope.RECOMMENDATIONS_READ)
    before = reader.get("/api/v1/recommendations/user-0", {"limit": 100}).json()
    assert before["fallback"] is None
    assert {"item-0", "item-10"}.isdisjoint(item["item_id"] for item in before["items"])

    assert writer.delete(URL.format("user-0")).status_code == 204
    registry.refresh()  # what every process's watcher does on the bump or the next poll

    after = reader.get("/api/v1/recommendations/user-0", {"limit": 100}).json()
    assert after["fallback"] == "unknown_user"
    returned = [item["item_id"] for item in after["items"]]
    assert returned[:2] == ["item-0", "item-1"]  # the most popular, no longer "seen"
    assert "item-10" in returned
    # Other users are served by the model as before.
    other = reader.get("/api/v1/recommendations/user-1").json()
    assert other["fallback"] is None


def test_the_erasure_bumps_the_serving_key_on_commit(writer, django_capture_on_commit_callbacks):
    recommender = Recommender.objects.get(name="default")
    before = active_version_token(recommender.pk)
    with django_capture_on_commit_callbacks(execute=True):
        assert writer.delete(URL.format("alice")).status_code == 204
    assert active_version_token(recommender.pk) != before
