"""The next run times of a five-field cron expression, as Celery beat will fire them.

Fields are parsed by Celery's own ``crontab`` (names like ``mon``, ranges, steps), and a
day matches when its month, day of month *and* day of week all match: Celery's rule (plain
cron ORs the two day fields when both are restricted), so what the admin shows is what
beat does. No Django here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from celery.schedules import crontab

# Far enough for "29 2 *" (a leap day on a given weekday can be 28 years away, but a
# schedule that rare is shown as having no run in this horizon rather than searched for).
HORIZON_DAYS = 366 * 5


CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def cron_fields(cron: str) -> dict[str, str]:
    """``"0 3 * * *"`` -> ``{"minute": "0", "hour": "3", ...}``: the keyword arguments of
    Celery's ``crontab`` and the fields of django-celery-beat's ``CrontabSchedule``."""
    return dict(zip(CRON_FIELDS, cron.split(), strict=True))


def cron_next_runs(cron: str, *, after: datetime, count: int = 3) -> list[datetime]:
    """The first ``count`` run times strictly after ``after`` (UTC, minute precision).
    ``cron`` must be valid (``recommender.models.validate_schedule_cron``)."""
    schedule = crontab(**cron_fields(cron))
    minutes, hours = sorted(schedule.minute), sorted(schedule.hour)
    after = after.astimezone(UTC)
    runs: list[datetime] = []
    day = after.replace(hour=0, minute=0, second=0, microsecond=0)
    for _ in range(HORIZON_DAYS):
        if (
            day.month in schedule.month_of_year
            and day.day in schedule.day_of_month
            and day.isoweekday() % 7 in schedule.day_of_week  # cron: 0 = Sunday
        ):
            for h in hours:
                for m in minutes:
                    at = day.replace(hour=h, minute=m)
                    if at > after:
                        runs.append(at)
                        if len(runs) == count:
                            return runs
        day += timedelta(days=1)
    return runs
