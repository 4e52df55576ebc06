"""A recommender's schedule mirrored into django-celery-beat."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django_celery_beat.models import PeriodicTask

from tests.factories import RecommenderFactory
from training.exceptions import InvalidSchedule
from training.schedules import SCHEDULED_TASK, recommender_schedule_sync

pytestmark = pytest.mark.django_db


def _sync(recommender, **changes):
    for field, value in changes.items():
        setattr(recommender, field, value)
    recommender.save()
    task = recommender_schedule_sync(recommender=recommender)
    recommender.refresh_from_db()
    return task


def _cron(task: PeriodicTask) -> str:
    c = task.crontab
    return f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"


def test_sync_creates_the_periodic_task_in_utc():
    recommender = RecommenderFactory()

    task = _sync(recommender, schedule_cron="0 3 * * *", schedule_enabled=True)

    assert recommender.periodic_task == task
    assert task.task == SCHEDULED_TASK == "training.tasks.run_scheduled_training"
    assert json.loads(task.args) == [recommender.pk]
    assert task.enabled is True
    assert _cron(task) == "0 3 * * *"
    assert str(task.crontab.timezone) == "UTC"


def test_sync_updates_the_same_task_and_disables_it():
    recommender = RecommenderFactory()
    created = _sync(recommender, schedule_cron="0 3 * * *", schedule_enabled=True)

    updated = _sync(recommender, schedule_cron="*/30 1-5 * * 1-5", schedule_enabled=False)

    assert updated.pk == created.pk
    assert PeriodicTask.objects.filter(task=SCHEDULED_TASK).count() == 1
    assert _cron(PeriodicTask.objects.get(pk=created.pk)) == "*/30 1-5 * * 1-5"
    assert PeriodicTask.objects.get(pk=created.pk).enabled is False


def test_sync_deletes_the_task_when_the_cron_is_cleared():
    recommender = RecommenderFactory()
    created = _sync(recommender, schedule_cron="0 3 * * *", schedule_enabled=True)

    assert _sync(recommender, schedule_cron="") is None

    assert recommender.periodic_task is None
    assert not PeriodicTask.objects.filter(pk=created.pk).exists()
    assert _sync(recommender) is None  # idempotent


def test_each_recommender_has_its_own_task():
    first, second = RecommenderFactory(), RecommenderFactory()
    a = _sync(first, schedule_cron="0 3 * * *", schedule_enabled=True)
    b = _sync(second, schedule_cron="0 3 * * *", schedule_enabled=True)
    assert a.pk != b.pk
    assert json.loads(b.args) == [second.pk]


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 3 * *", "give 5 fields"),
        ("0 3 * * * *", "give 5 fields"),
        ("61 3 * * *", "not a valid cron expression"),
        ("0 25 * * *", "not a valid cron expression"),
        ("every day", "give 5 fields"),
        ("a b c d e", "not a valid cron expression"),
    ],
)
def test_a_bad_cron_is_refused_with_a_clear_error(cron, message):
    recommender = RecommenderFactory()
    recommender.schedule_cron = cron
    recommender.schedule_enabled = True
    recommender.save()

    with pytest.raises(InvalidSchedule) as exc:
        recommender_schedule_sync(recommender=recommender)

    assert exc.value.status == 400
    assert message in exc.value.message and repr(cron) in exc.value.message
    assert not PeriodicTask.objects.filter(task=SCHEDULED_TASK).exists()
    # the admin form sees the same error through the field validator
    with pytest.raises(ValidationError):
        recommender.full_clean()


def test_sync_stores_the_recommenders_time_zone_in_the_beat_entry():
    recommender = RecommenderFactory()

    task = _sync(
        recommender,
        schedule_cron="30 18 * * *",
        schedule_timezone="Asia/Colombo",
        schedule_enabled=True,
    )

    assert str(task.crontab.timezone) == "Asia/Colombo"
    assert "Asia/Colombo" in task.description
    moved = _sync(recommender, schedule_timezone="America/New_York")
    assert moved.pk == task.pk and str(moved.crontab.timezone) == "America/New_York"


def test_a_new_recommenders_schedule_is_in_the_configured_zone(settings):
    settings.RECSITE_SCHEDULE_TIMEZONE = "Europe/London"
    assert RecommenderFactory().schedule_timezone == "Europe/London"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "EST5EDTX", "", "../etc/passwd", "utc "])
def test_an_unknown_time_zone_is_a_field_error(zone):
    recommender = RecommenderFactory(schedule_cron="0 3 * * *")
    recommender.schedule_timezone = zone
    with pytest.raises(ValidationError) as exc:
        recommender.full_clean()
    assert list(exc.value.message_dict) == ["schedule_timezone"]
