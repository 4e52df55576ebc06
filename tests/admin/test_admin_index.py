"""The admin index is the control room: per recommender, links to the active version, the
last run, the schedule and the online figures, in a bounded number of queries."""

from __future__ import annotations

import pytest
from django.urls import reverse

from recommender.services import model_version_promote
from tests.factories import ModelVersionFactory, RecommenderFactory, TrainingRunFactory
from tests.factories import staff_client as make_staff_client
from training.models import RunStatus

pytestmark = pytest.mark.django_db


def shop(name: str):
    recommender = RecommenderFactory(name=name, schedule_cron="0 3 * * *", schedule_enabled=True)
    version = ModelVersionFactory(recommender=recommender)
    model_version_promote(version=version, reason="test")
    run = TrainingRunFactory(recommender=recommender, status=RunStatus.SUCCEEDED, version=version)
    return recommender, version, run


def test_the_index_links_each_recommenders_version_run_schedule_and_ctr(admin_client, artifact_dir):
    recommender, version, run = shop("shop")
    body = admin_client.get(reverse("admin:index")).content.decode()
    assert 'id="control-room-shop"' in body
    assert reverse("admin:recommender_modelversion_change", args=[version.pk]) in body
    assert reverse("admin:training_trainingrun_change", args=[run.pk]) in body
    assert reverse("admin:recommender_recommender_change", args=[recommender.pk]) in body
    assert f"{reverse('admin:dashboard')}#recommender-shop" in body
    assert "03:00 UTC" in body
    assert "no lists shown" in body


def test_the_index_reads_a_bounded_number_of_queries(
    admin_client, artifact_dir, django_assert_max_num_queries
):
    for name in ("a", "b", "c", "d", "e", "f"):
        shop(name)
    admin_client.get(reverse("admin:index"))  # session and permission caches warmed
    with django_assert_max_num_queries(8):
        response = admin_client.get(reverse("admin:index"))
    assert response.content.decode().count('id="control-room-') == 7  # with "default"


def test_staff_who_may_not_view_recommenders_see_no_summary(artifact_dir):
    shop("shop")
    client = make_staff_client("clerk", "recommender.view_apikey")
    body = client.get(reverse("admin:index")).content.decode()
    assert 'id="recsite-dashboard-link"' in body
    assert 'id="control-room-' not in body
