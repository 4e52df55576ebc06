"""django-celery-beat's raw screens: out of the menu, open to superusers by URL only; the
recommender's page says where the schedule lives."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import RecommenderFactory, staff_client
from training.schedules import recommender_schedule_sync

pytestmark = pytest.mark.django_db

BEAT_MODELS = (
    "periodictask",
    "crontabschedule",
    "intervalschedule",
    "clockedschedule",
    "solarschedule",
)
ALL_BEAT_PERMISSIONS = [
    f"django_celery_beat.{action}_{model}"
    for model in BEAT_MODELS
    for action in ("view", "add", "change", "delete")
]


def changelist(model: str) -> str:
    return reverse(f"admin:django_celery_beat_{model}_changelist")


def test_the_menu_leaves_the_beat_screens_out_even_for_a_superuser(admin_client):
    page = admin_client.get(reverse("admin:index"))
    assert page.status_code == 200
    listed = {app["app_label"] for app in page.context["app_list"]}
    assert {"recommender", "training"} <= listed
    assert "django_celery_beat" not in listed
    # The sidebar of any admin page uses the same list.
    other = admin_client.get(reverse("admin:recommender_recommender_changelist"))
    assert "django_celery_beat" not in {app["app_label"] for app in other.context["available_apps"]}
    assert "/admin/django_celery_beat/" not in other.content.decode()


@pytest.mark.parametrize("model", BEAT_MODELS)
def test_a_superuser_still_opens_each_beat_screen_by_url(admin_client, model):
    assert admin_client.get(changelist(model)).status_code == 200


def test_a_superuser_still_opens_the_beat_app_page_and_a_synced_task(admin_client):
    recommender = RecommenderFactory(schedule_cron="0 3 * * *", schedule_enabled=True)
    task = recommender_schedule_sync(recommender=recommender)
    app_page = admin_client.get(reverse("admin:app_list", args=["django_celery_beat"]))
    assert app_page.status_code == 200
    assert len(app_page.context["app_list"][0]["models"]) == len(BEAT_MODELS)
    url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
    assert admin_client.get(url).status_code == 200


@pytest.mark.parametrize("model", BEAT_MODELS)
def test_staff_with_every_beat_permission_cannot_open_the_screens(model):
    client = staff_client("ops", *ALL_BEAT_PERMISSIONS)
    assert client.get(changelist(model)).status_code == 403
    assert client.get(reverse(f"admin:django_celery_beat_{model}_add")).status_code == 403
    index = client.get(reverse("admin:index"))
    assert "django_celery_beat" not in {app["app_label"] for app in index.context["app_list"]}


def test_staff_cannot_change_a_synced_task_behind_the_recommenders_back():
    recommender = RecommenderFactory(schedule_cron="0 3 * * *", schedule_enabled=True)
    task = recommender_schedule_sync(recommender=recommender)
    client = staff_client("ops", *ALL_BEAT_PERMISSIONS)
    url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
    assert client.post(url, {"name": task.name, "enabled": ""}).status_code == 403
    task.refresh_from_db()
    assert task.enabled


def test_the_recommender_page_says_where_the_schedule_lives(admin_client):
    recommender = RecommenderFactory()
    page = admin_client.get(reverse("admin:recommender_recommender_change", args=[recommender.pk]))
    text = page.content.decode()
    assert "This is where the recommender&#x27;s schedule lives" in text or (
        "This is where the recommender's schedule lives" in text
    )
    assert "edit the schedule here, not there" in text
