"""API keys in the admin: created through ``api_key_create`` (shown once), revoked
through ``api_key_revoke``, never edited."""

from __future__ import annotations

import pytest
from django.urls import reverse

from recommender.models import ApiKey, Scope
from recommender.services import api_key_create

pytestmark = pytest.mark.django_db


def test_create_shows_the_key_once_with_the_chosen_scopes(admin_client):
    response = admin_client.post(
        reverse("admin:recommender_apikey_add"),
        {"name": "web", "scopes": [Scope.RECOMMENDATIONS_READ, Scope.EVENTS_WRITE]},
    )
    body = response.content.decode()
    key = ApiKey.objects.get(name="web")
    assert response.status_code == 200 and "shown this once" in body
    assert sorted(key.scopes) == sorted([Scope.EVENTS_WRITE, Scope.RECOMMENDATIONS_READ])
    shown = body.split('id="recsite-new-key">')[1].split("<")[0]
    assert ApiKey.objects.get_from_key(shown) == key
    # The key is not shown again anywhere.
    page = admin_client.get(reverse("admin:recommender_apikey_change", args=[key.pk]))
    assert shown not in page.content.decode()


def test_create_needs_a_scope(admin_client):
    response = admin_client.post(reverse("admin:recommender_apikey_add"), {"name": "web"})
    assert response.status_code == 200 and "This field is required" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_the_created_key_works_against_the_api(admin_client, client):
    response = admin_client.post(
        reverse("admin:recommender_apikey_add"),
        {"name": "trainer", "scopes": [Scope.TRAINING_WRITE]},
    )
    shown = response.content.decode().split('id="recsite-new-key">')[1].split("<")[0]
    answer = client.get(
        "/api/v1/training-runs?recommender=default", HTTP_AUTHORIZATION=f"Api-Key {shown}"
    )
    assert answer.status_code == 200


def test_revoke_action_revokes(admin_client, client):
    api_key, key = api_key_create(name="old", scopes=[Scope.TRAINING_WRITE])
    admin_client.post(
        reverse("admin:recommender_apikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [api_key.pk]},
    )
    api_key.refresh_from_db()
    assert api_key.revoked
    answer = client.get(
        "/api/v1/training-runs?recommender=default", HTTP_AUTHORIZATION=f"Api-Key {key}"
    )
    assert answer.status_code in (401, 403)


def test_staff_without_change_permission_cannot_revoke(staff_client):
    api_key, _ = api_key_create(name="old", scopes=[Scope.TRAINING_WRITE])
    client = staff_client()
    listing = client.get(reverse("admin:recommender_apikey_changelist")).content.decode()
    assert "revoke_keys" not in listing
    client.post(
        reverse("admin:recommender_apikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [api_key.pk]},
    )
    api_key.refresh_from_db()
    assert not api_key.revoked
    assert (
        client.post(
            reverse("admin:recommender_apikey_add"), {"name": "x", "scopes": ["events:write"]}
        ).status_code
        == 403
    )
