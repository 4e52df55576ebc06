"""A recommender's training schedule, mirrored into django-celery-beat.

The recommender owns ``schedule_cron``, ``schedule_timezone`` and ``schedule_enabled``;
beat reads ``PeriodicTask`` rows. ``recommender_schedule_sync`` makes the second match the
first and is called by whatever edits the first (the admin, a command).

The cron is stored in a ``CrontabSchedule`` with the recommender's time zone, which beat
evaluates in that zone (django-celery-beat's ``TzAwareCrontab``): "30 18 * * *" in
Asia/Colombo is 18:30 in Colombo all year, and in America/New_York 18:30 local on both
sides of a daylight-saving change. What it does on the days the clocks change (a time in
the spring gap runs that much later, a time that occurs twice runs once) is tested
against beat's own code with an injected clock (``tests/training/test_schedule_dst.py``)
and previewed by ``training.cron.cron_next_runs``."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from recommender.models import Recommender, validate_schedule_cron
from training.cron import cron_fields
from training.exceptions import InvalidSchedule

SCHEDULED_TASK = "training.tasks.run_scheduled_training"


def periodic_task_name(recommender: Recommender) -> str:
    return f"training: {recommender.name}"


def crontab_fields(cron: str) -> dict[str, str]:
    """``"0 3 * * *"`` -> the CrontabSchedule fields; ``InvalidSchedule`` when invalid."""
    try:
        validate_schedule_cron(cron)
    except ValidationError as exc:
        raise InvalidSchedule(exc.messages[0], schedule_cron=cron)
    return cron_fields(cron)


@transaction.atomic
def recommender_schedule_sync(*, recommender: Recommender) -> PeriodicTask | None:
    """Create, update, enable/disable or delete the recommender's beat entry so it
    matches ``schedule_cron`` / ``schedule_enabled``. An empty cron deletes the entry.
    Returns the entry (None when there is no schedule)."""
    recommender = Recommender.objects.select_for_update().get(pk=recommender.pk)
    cron = recommender.schedule_cron.strip()
    task = recommender.periodic_task
    if not cron:
        if task is not None:
            recommender.periodic_task = None
            recommender.save(update_fields=["periodic_task", "updated_at"])
            task.delete()
        return None

    crontab, _ = CrontabSchedule.objects.get_or_create(
        timezone=ZoneInfo(recommender.schedule_timezone), **crontab_fields(cron)
    )
    values = {
        "name": periodic_task_name(recommender),
        "task": SCHEDULED_TASK,
        "crontab": crontab,
        "interval": None,
        "solar": None,
        "clocked": None,
        "args": json.dumps([recommender.pk]),
        "kwargs": "{}",
        "enabled": recommender.schedule_enabled,
        "description": f"Scheduled training of recommender {recommender.name!r} "
        f"({recommender.schedule_timezone}); edit it on the recommender's admin page.",
    }
    if task is None:
        # A leftover entry with our name (e.g. the link was cleared) is adopted, not duplicated.
        task = PeriodicTask.objects.filter(name=values["name"]).first() or PeriodicTask()
    for field, value in values.items():
        setattr(task, field, value)
    task.save()
    if recommender.periodic_task_id != task.pk:
        recommender.periodic_task = task
        recommender.save(update_fields=["periodic_task", "updated_at"])
    return task
