"""Model versions in the admin: list, page, compare, promote and roll back with their
confirmation step, reason, audit trail and permissions."""

from __future__ import annotations

import pytest
from django.urls import reverse

from recommender.models import PromotionEvent, PromotionKind, VersionStatus
from recommender.services import model_version_promote
from tests.factories import ModelVersionFactory, RecommenderFactory

pytestmark = pytest.mark.django_db

PROMOTE = "recommender.promote_modelversion"
ROLLBACK = "recommender.rollback_modelversion"


@pytest.fixture
def versions():
    """v1 active (promoted), v2 a better candidate, of recommender ``shop``."""
    recommender = RecommenderFactory(name="shop")
    v1 = ModelVersionFactory(recommender=recommender, metrics={"precision@10": 0.10})
    v2 = ModelVersionFactory(recommender=recommender, metrics={"precision@10": 0.15})
    model_version_promote(version=v1, reason="first")
    return v1, v2


def promote_url(version) -> str:
    return reverse("admin:recommender_modelversion_promote", args=[version.pk])


def rollback_url(recommender) -> str:
    return reverse("admin:recommender_modelversion_rollback", args=[recommender.pk])


def test_list_shows_number_status_key_metric_and_the_active_one(admin_client, versions):
    response = admin_client.get(reverse("admin:recommender_modelversion_changelist"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "v1" in body and "v2" in body
    assert "Active (serving)" in body
    assert "precision_at_k 0.1500" in body


def test_version_list_queries_stay_flat_as_rows_grow(admin_client, django_assert_max_num_queries):
    recommender = RecommenderFactory(name="many")
    url = reverse("admin:recommender_modelversion_changelist")
    ModelVersionFactory.create_batch(5, recommender=recommender)
    admin_client.get(url)  # warm caches (content types, session)
    with django_assert_max_num_queries(12) as few:
        admin_client.get(url)
    ModelVersionFactory.create_batch(45, recommender=recommender)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert admin_client.get(url).status_code == 200


def test_promote_needs_a_confirmation_with_from_to_and_deltas(admin_client, versions):
    v1, v2 = versions
    response = admin_client.post(promote_url(v2))
    body = response.content.decode()
    assert response.status_code == 200
    assert "v1 → v2" in body
    assert "▲ +0.05" in body  # the key metric's change
    assert 'name="reason"' in body
    v2.refresh_from_db()
    assert v2.status == VersionStatus.CANDIDATE  # nothing changed yet


def test_promote_action_from_the_list_shows_the_confirmation(admin_client, versions):
    _, v2 = versions
    response = admin_client.post(
        reverse("admin:recommender_modelversion_changelist"),
        {"action": "promote_version", "_selected_action": [v2.pk]},
    )
    assert response.status_code == 200
    assert "v1 → v2" in response.content.decode()
    v2.refresh_from_db()
    assert v2.status == VersionStatus.CANDIDATE


def test_promote_with_a_reason_activates_and_writes_the_audit_row(admin_client, versions):
    v1, v2 = versions
    response = admin_client.post(promote_url(v2), {"confirm": "yes", "reason": "better NDCG"})
    assert response.status_code == 302
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert (v1.status, v2.status) == (VersionStatus.RETIRED, VersionStatus.ACTIVE)
    event = PromotionEvent.objects.latest("id")
    assert (event.kind, event.from_version, event.to_version) == (PromotionKind.PROMOTE, v1, v2)
    assert event.reason == "better NDCG" and event.actor.username == "admin"
    page = admin_client.get(response["Location"]).content.decode()
    assert "better NDCG" in page  # the audit trail on the version page


def test_promote_without_a_reason_is_refused(admin_client, versions):
    _, v2 = versions
    response = admin_client.post(promote_url(v2), {"confirm": "yes", "reason": ""})
    assert response.status_code == 400
    assert "This field is required" in response.content.decode()
    v2.refresh_from_db()
    assert v2.status == VersionStatus.CANDIDATE


def test_promote_a_rejected_version_shows_the_service_error(admin_client, versions):
    _, v2 = versions
    v2.status = VersionStatus.REJECTED
    v2.save()
    response = admin_client.post(promote_url(v2), {"confirm": "yes", "reason": "try"}, follow=True)
    assert "was rejected" in response.content.decode()
    assert not PromotionEvent.objects.filter(to_version=v2).exists()


def test_rollback_confirms_then_goes_back_and_audits(admin_client, versions):
    v1, v2 = versions
    model_version_promote(version=v2, reason="second")
    response = admin_client.post(rollback_url(v1.recommender))
    assert "v2 → v1" in response.content.decode()
    response = admin_client.post(
        rollback_url(v1.recommender), {"confirm": "yes", "reason": "v2 hurts conversion"}
    )
    assert response.status_code == 302
    v1.refresh_from_db()
    assert v1.status == VersionStatus.ACTIVE
    event = PromotionEvent.objects.latest("id")
    assert (event.kind, event.from_version, event.reason) == (
        PromotionKind.ROLLBACK,
        v2,
        "v2 hurts conversion",
    )


def test_rollback_without_a_target_says_so(admin_client, versions):
    v1, _ = versions
    response = admin_client.post(rollback_url(v1.recommender), follow=True)
    assert "no previous active version" in response.content.decode()


@pytest.mark.parametrize(
    "url_of", [lambda v: promote_url(v[1]), lambda v: rollback_url(v[0].recommender)]
)
def test_state_changes_refuse_get(admin_client, versions, url_of):
    assert admin_client.get(url_of(versions)).status_code == 405


def test_staff_without_promote_permission_get_403_and_no_button(staff_client, versions):
    v1, v2 = versions
    client = staff_client()
    assert client.post(promote_url(v2), {"confirm": "yes", "reason": "x"}).status_code == 403
    page = client.get(reverse("admin:recommender_modelversion_change", args=[v2.pk]))
    assert page.status_code == 200
    assert "recsite-promote" not in page.content.decode()
    listing = client.get(reverse("admin:recommender_modelversion_changelist")).content.decode()
    assert "promote_version" not in listing and "rollback_recommender" not in listing
    v2.refresh_from_db()
    assert v2.status == VersionStatus.CANDIDATE


def test_staff_without_rollback_permission_get_403(staff_client, versions):
    v1, v2 = versions
    model_version_promote(version=v2, reason="second")
    client = staff_client(PROMOTE)
    response = client.post(rollback_url(v1.recommender), {"confirm": "yes", "reason": "x"})
    assert response.status_code == 403
    page = client.get(reverse("admin:recommender_modelversion_change", args=[v2.pk]))
    assert "recsite-rollback" not in page.content.decode()


def test_staff_with_the_permissions_see_the_buttons_and_can_act(staff_client, versions):
    v1, v2 = versions
    client = staff_client(PROMOTE, ROLLBACK)
    page = client.get(reverse("admin:recommender_modelversion_change", args=[v2.pk]))
    assert "recsite-promote" in page.content.decode()
    assert client.post(promote_url(v2), {"confirm": "yes", "reason": "ok"}).status_code == 302
    page = client.get(reverse("admin:recommender_modelversion_change", args=[v2.pk]))
    assert "recsite-rollback" in page.content.decode()
    assert (
        client.post(rollback_url(v1.recommender), {"confirm": "yes", "reason": "undo"}).status_code
        == 302
    )
    v1.refresh_from_db()
    assert v1.status == VersionStatus.ACTIVE


def test_compare_shows_versions_side_by_side_with_delta_vs_active(admin_client, versions):
    v1, v2 = versions
    v3 = ModelVersionFactory(
        recommender=v1.recommender,
        metrics={"precision@10": 0.08},
        hyperparameters={"no_components": 64},
    )
    response = admin_client.post(
        reverse("admin:recommender_modelversion_changelist"),
        {"action": "compare_versions", "_selected_action": [v2.pk, v3.pk]},
    )
    assert response.status_code == 302
    page = admin_client.get(response["Location"]).content.decode()
    assert "shop v2" in page and "shop v3" in page
    assert "shop v1" in page  # the active version is added as the baseline
    assert "▲ +0.05" in page and "▼ −0.02" in page
    assert "(differs)" in page  # no_components 32 vs 64


def test_compare_needs_two_versions(admin_client, versions):
    _, v2 = versions
    response = admin_client.post(
        reverse("admin:recommender_modelversion_changelist"),
        {"action": "compare_versions", "_selected_action": [v2.pk]},
        follow=True,
    )
    assert "Select 2 to" in response.content.decode()


def test_versions_are_read_only(admin_client, versions):
    v1, _ = versions
    assert admin_client.get(reverse("admin:recommender_modelversion_add")).status_code == 403
    assert (
        admin_client.post(
            reverse("admin:recommender_modelversion_delete", args=[v1.pk])
        ).status_code
        == 403
    )
