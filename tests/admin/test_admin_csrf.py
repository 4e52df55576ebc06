"""The admin's state changes are POST-only behind Django's CSRF check: a forged POST from
a logged-in superuser's browser (no CSRF token) gets 403 and changes nothing, a GET
changes nothing, and the same POST with the token works (so the 403 is the CSRF check)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from recommender.models import ApiKey, ModelVersion, PromotionEvent, Scope
from recommender.services import api_key_create, model_version_promote
from tests.factories import ModelVersionFactory, RecommenderFactory, TrainingRunFactory
from training.models import RunStatus, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> dict:
    """v1 was active, v2 is active (a rollback target exists), v3 is a candidate; a
    queued run of ``shop``; an idle recommender; a live API key."""
    v1 = ModelVersionFactory(recommender__name="shop")
    v2 = ModelVersionFactory(recommender=v1.recommender)
    v3 = ModelVersionFactory(recommender=v1.recommender)
    model_version_promote(version=v1, reason="first")
    model_version_promote(version=v2, reason="second")
    api_key, _ = api_key_create(name="client", scopes=[Scope.EVENTS_WRITE])
    return {
        "v3": v3,
        "shop": v1.recommender,
        "idle": RecommenderFactory(name="idle"),
        "run": TrainingRunFactory(recommender=v1.recommender, status=RunStatus.QUEUED),
        "key": api_key,
    }


def snapshot() -> tuple:
    """Everything these admin actions could change."""
    return (
        sorted(ModelVersion.objects.values_list("pk", "status")),
        PromotionEvent.objects.count(),
        sorted(TrainingRun.objects.values_list("pk", "status", "cancel_requested")),
        sorted(ApiKey.objects.values_list("pk", "revoked")),
    )


REASON = {"confirm": "yes", "reason": "forged"}
# (name, url, form data): every admin POST that changes state.
WRITES: dict[str, Callable[[dict], tuple[str, dict]]] = {
    "promote": lambda w: (
        reverse("admin:recommender_modelversion_promote", args=[w["v3"].pk]),
        REASON,
    ),
    "rollback": lambda w: (
        reverse("admin:recommender_modelversion_rollback", args=[w["shop"].pk]),
        REASON,
    ),
    "start-run": lambda w: (
        reverse("admin:recommender_recommender_start_run", args=[w["idle"].pk]),
        {},
    ),
    "cancel-run": lambda w: (
        reverse("admin:training_trainingrun_cancel", args=[w["run"].pk]),
        {},
    ),
    "revoke-key-action": lambda w: (
        reverse("admin:recommender_apikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [w["key"].pk], "index": 0},
    ),
    "create-key": lambda w: (
        reverse("admin:recommender_apikey_add"),
        {"name": "forged", "scopes": [Scope.TRAINING_WRITE]},
    ),
}
# The custom views among them (the changelist and add views answer GET with a page).
POST_ONLY = ("promote", "rollback", "start-run", "cancel-run")


@pytest.fixture
def browser() -> Client:
    """A superuser's browser that enforces CSRF, as a real one does."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_superuser("root", "root@example.com", None))
    return client


@pytest.mark.parametrize("name", WRITES)
def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(browser, world, name):
    url, data = WRITES[name](world)
    before = snapshot()
    response = browser.post(url, data)
    assert response.status_code == 403
    assert "CSRF" in response.content.decode()
    assert snapshot() == before


@pytest.mark.parametrize("name", WRITES)
def test_a_post_with_a_token_from_another_session_is_refused(browser, world, name):
    other = Client(enforce_csrf_checks=True)
    other.get(reverse("admin:login"))
    url, data = WRITES[name](world)
    before = snapshot()
    response = browser.post(url, {**data, "csrfmiddlewaretoken": other.cookies["csrftoken"].value})
    assert response.status_code == 403
    assert snapshot() == before


@pytest.mark.parametrize("name", WRITES)
def test_the_same_post_with_the_csrf_token_goes_through(browser, world, name):
    """The control: the 403 above is the CSRF check, not a missing permission."""
    browser.get(reverse("admin:index"))
    url, data = WRITES[name](world)
    before = snapshot()
    response = browser.post(
        url, {**data, "csrfmiddlewaretoken": browser.cookies["csrftoken"].value}
    )
    assert response.status_code in (200, 302)
    assert snapshot() != before


@pytest.mark.parametrize("name", WRITES)
def test_a_get_changes_nothing(browser, world, name):
    url, data = WRITES[name](world)
    before = snapshot()
    response = browser.get(url, data)
    if name in POST_ONLY:
        assert response.status_code == 405
    else:  # the page, or the list again when the query makes no sense to it
        assert response.status_code in (200, 302)
    assert snapshot() == before
