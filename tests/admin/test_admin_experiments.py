"""Experiments in the admin: start (the service's field errors on the form), the page
with the per-arm table, Stop and Promote the winner behind a confirmation with a reason,
permissions; online figures on the version compare page."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from recommender.models import VersionStatus
from recommender.online.experiments import TreatmentSpec, experiment_create
from recommender.online.models import Experiment, ExperimentEvent, ExperimentStatus, OnlineHourly
from recommender.services import model_version_promote
from tests.factories import ModelVersionFactory, RecommenderFactory, staff_client

pytestmark = pytest.mark.django_db

MANAGE = "recommender.manage_experiment"
PROMOTE = "recommender.promote_modelversion"


@pytest.fixture
def versions(artifact_dir):
    recommender = RecommenderFactory(name="shop")
    v1, v2 = (
        ModelVersionFactory(recommender=recommender),
        ModelVersionFactory(recommender=recommender),
    )
    model_version_promote(version=v1, reason="first")
    return v1, v2


@pytest.fixture
def experiment(versions):
    return experiment_create(
        recommender=versions[0].recommender,
        name="v2 vs v1",
        treatments=[TreatmentSpec(version=2, share=0.5)],
    )


def test_staff_start_an_experiment_from_the_form(versions):
    v1, v2 = versions
    client = staff_client("alice", MANAGE, "recommender.view_experiment")
    response = client.post(
        reverse("admin:recommender_experiment_add"),
        {
            "recommender": v1.recommender.pk,
            "name": "test",
            "primary_metric": "ctr",
            "treatment_version": v2.pk,
            "treatment_share": 0.3,
        },
    )
    assert response.status_code == 302, response.content.decode()
    experiment = Experiment.objects.get()
    assert [a.share for a in experiment.arms.all()] == [pytest.approx(0.7), 0.3]
    assert ExperimentEvent.objects.get().actor_label == "admin:alice"


def test_the_services_field_errors_show_on_the_form(versions):
    v1, _ = versions
    client = staff_client("alice", MANAGE, "recommender.view_experiment")
    response = client.post(
        reverse("admin:recommender_experiment_add"),
        {
            "recommender": v1.recommender.pk,
            "name": "test",
            "primary_metric": "ctr",
            "treatment_version": v1.pk,
            "treatment_share": 0.5,
        },
    )
    assert response.status_code == 400
    assert "is the control" in response.content.decode()
    assert not Experiment.objects.exists()


def test_the_page_shows_each_arm_and_the_buttons_the_user_may_use(experiment):
    viewer = staff_client("viewer", "recommender.view_experiment")
    body = viewer.get(
        reverse("admin:recommender_experiment_change", args=[experiment.pk])
    ).content.decode()
    assert "treatment-1" in body and "shop v2" in body and "no difference yet" in body
    assert "Stop the experiment" not in body
    manager = staff_client("manager", MANAGE, "recommender.view_experiment")
    body = manager.get(
        reverse("admin:recommender_experiment_change", args=[experiment.pk])
    ).content.decode()
    assert "Stop the experiment" in body


def test_stop_is_post_only_confirmed_with_a_reason_and_audited(experiment):
    client = staff_client("manager", MANAGE, "recommender.view_experiment")
    url = reverse("admin:recommender_experiment_stop", args=[experiment.pk])
    assert client.get(url).status_code == 405
    assert "Reason" in client.post(url).content.decode()  # the confirmation page
    assert client.post(url, {"confirm": "yes", "reason": ""}).status_code == 400
    assert client.post(url, {"confirm": "yes", "reason": "enough data"}).status_code == 302
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.STOPPED
    assert ExperimentEvent.objects.get(kind="stop").reason == "enough data"


def test_promote_the_winner_goes_through_the_registry(experiment, versions):
    client = staff_client("manager", MANAGE, PROMOTE, "recommender.view_experiment")
    stop = reverse("admin:recommender_experiment_stop", args=[experiment.pk])
    client.post(stop, {"confirm": "yes", "reason": "done"})
    promote = reverse("admin:recommender_experiment_promote", args=[experiment.pk])
    response = client.post(promote, {"confirm": "yes", "reason": "won", "arm": "treatment-1"})
    assert response.status_code == 302
    versions[1].refresh_from_db()
    assert versions[1].status == VersionStatus.ACTIVE


def test_without_the_permissions_state_changes_are_refused(experiment):
    viewer = staff_client("viewer", "recommender.view_experiment")
    for name in ("stop", "promote"):
        url = reverse(f"admin:recommender_experiment_{name}", args=[experiment.pk])
        assert viewer.post(url, {"confirm": "yes", "reason": "x"}).status_code == 403
    assert viewer.get(reverse("admin:recommender_experiment_add")).status_code == 403


def test_the_compare_page_shows_online_next_to_offline_metrics(admin_client, versions):
    v1, v2 = versions
    OnlineHourly.objects.create(
        recommender=v1.recommender,
        hour=datetime(2025, 1, 1, tzinfo=UTC),
        model_version=1,
        position=1,
        lists=10,
        impressions=200,
        clicks=20,
    )
    url = reverse("admin:recommender_modelversion_compare") + f"?ids={v1.pk},{v2.pk}"
    body = admin_client.get(url).content.decode()
    assert "Online" in body and "CTR" in body and "0.1000" in body
