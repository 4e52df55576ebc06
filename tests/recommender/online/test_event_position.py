"""Events accept an optional position (where the client showed the item) next to the
recommendation_id, through both insert paths (COPY on PostgreSQL, INSERT elsewhere)."""

from datetime import UTC, datetime

import pytest

from recommender.models import Event, Scope

pytestmark = pytest.mark.django_db

EVENT = {
    "event_id": "e1",
    "user_id": "u1",
    "item_id": "i1",
    "type": "click",
    "timestamp": datetime(2025, 1, 1, tzinfo=UTC).isoformat(),
    "recommendation_id": "0190f4d2-7c2e-7a4b-8c3d-1e2f3a4b5c6d",
}


@pytest.fixture
def sender(make_api_client):
    return make_api_client(Scope.EVENTS_WRITE)


def test_an_event_with_a_position_stores_it(sender):
    response = sender.post(
        "/api/v1/events",
        {"events": [{**EVENT, "position": 3}, {**EVENT, "event_id": "e2"}]},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert dict(Event.objects.values_list("event_id", "position")) == {"e1": 3, "e2": None}
    assert Event.objects.get(event_id="e1").recommendation_id == EVENT["recommendation_id"]


@pytest.mark.parametrize("position", [0, -1, 1.5, "3", True, 100_001])
def test_a_position_that_is_no_whole_number_from_1_is_a_400_naming_it(sender, position):
    response = sender.post(
        "/api/v1/events", {"events": [{**EVENT, "position": position}]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["detail"]["errors"][0]["field"] == "position"
    assert not Event.objects.exists()
