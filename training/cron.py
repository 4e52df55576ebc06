"""The next run times of a five-field cron expression, as Celery beat will fire them.

Fields are parsed by Celery's own ``crontab`` (names like ``mon``, ranges, steps), and a
day matches when its month, day of month *and* day of week all match: Celery's rule (plain
cron ORs the two day fields when both are restricted), so what the admin shows is what
beat does. No Django here."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo

from celery.schedules import crontab

# Far enough for "29 2 *" (a leap day on a given weekday can be 28 years away, but a
# schedule that rare is shown as having no run in this horizon rather than searched for).
HORIZON_DAYS = 366 * 5


CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


def cron_fields(cron: str) -> dict[str, str]:
    """``"0 3 * * *"`` -> ``{"minute": "0", "hour": "3", ...}``: the keyword arguments of
    Celery's ``crontab`` and the fields of django-celery-beat's ``CrontabSchedule``."""
    return dict(zip(CRON_FIELDS, cron.split(), strict=True))


def cron_next_runs(
    cron: str, *, after: datetime, count: int = 3, tz: tzinfo = UTC
) -> list[datetime]:
    """The first ``count`` run times strictly after ``after`` (minute precision), the
    cron read in the time zone ``tz``; returned in ``tz``. ``cron`` must be valid
    (``recommender.models.validate_schedule_cron``).

    Daylight saving, as django-celery-beat's time-zone-aware crontab fires (checked by
    ``tests/training/test_schedule_dst.py``): a local time that does not exist on the
    day the clocks go forward is read with the offset before the change, i.e. it runs
    that much later (02:30 -> 03:30); a local time that occurs twice when they go back is
    the first of the two (``fold=0``), so it runs once. Two local times that land on the
    same instant run once."""
    schedule = crontab(**cron_fields(cron))
    minutes, hours = sorted(schedule.minute), sorted(schedule.hour)
    after = after.astimezone(tz)
    runs: list[datetime] = []
    day = after.date()
    for _ in range(HORIZON_DAYS):
        if (
            day.month in schedule.month_of_year
            and day.day in schedule.day_of_month
            and day.isoweekday() % 7 in schedule.day_of_week  # cron: 0 = Sunday
        ):
            for h in hours:
                for m in minutes:
                    # Wall time, normalised through UTC: a time in the spring gap becomes
                    # the real instant (03:30 for 02:30), with its real offset.
                    at = datetime.combine(day, time(h, m), tzinfo=tz).astimezone(UTC)
                    if at > after and (not runs or at > runs[-1]):
                        runs.append(at.astimezone(tz))
                        if len(runs) == count:
                            return runs
        day += timedelta(days=1)
    return runs
