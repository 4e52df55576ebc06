"""Schedules in a time zone across daylight-saving changes, as beat really fires them.

Each test syncs a recommender's schedule into django-celery-beat (our service), then
drives beat's own code for that entry (``DatabaseScheduler``'s ``ModelEntry`` and
its time-zone-aware crontab) with an injected clock, the way beat's loop does: ask
``is_due``, run when due (last_run_at = now), sleep for the time it says, at most the
scheduler's max interval. No wall clock: the clock is the crontab's ``nowfun``.

2025 changes: America/New_York springs forward on Sunday 9 March (02:00 EST -> 03:00 EDT)
and falls back on Sunday 2 November (02:00 EDT -> 01:00 EST); Europe/London on 30 March
(01:00 GMT -> 02:00 BST) and 26 October (02:00 BST -> 01:00 GMT)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django_celery_beat.schedulers import ModelEntry

from recsite.celery import app as celery_app
from tests.factories import RecommenderFactory
from training.cron import cron_next_runs
from training.schedules import recommender_schedule_sync

pytestmark = pytest.mark.django_db

# Beat sleeps at most this long between checks (DatabaseScheduler's default is 5 s;
# a minute keeps the simulation fast and can only make a run later, never skip one).
MAX_SLEEP = timedelta(seconds=60)


def beat_runs(cron: str, zone: str, start: datetime, end: datetime) -> list[datetime]:
    """The instants beat fires the recommender's synced schedule between start and end."""
    recommender = RecommenderFactory(
        schedule_cron=cron, schedule_timezone=zone, schedule_enabled=True
    )
    task = recommender_schedule_sync(recommender=recommender)
    task.last_run_at = start
    entry = ModelEntry(task, app=celery_app)
    clock = [start]
    entry.schedule.nowfun = lambda: clock[0].astimezone(ZoneInfo(zone))
    runs: list[datetime] = []
    while clock[0] < end:
        due, next_check = entry.is_due()
        if due:
            runs.append(clock[0])
            entry.last_run_at = clock[0]
        clock[0] += max(min(timedelta(seconds=next_check), MAX_SLEEP), timedelta(seconds=1))
    return runs


def local(runs: list[datetime], zone: str) -> list[str]:
    return [run.astimezone(ZoneInfo(zone)).strftime("%m-%d %H:%M %Z") for run in runs]


def per_local_day(runs: list[datetime], zone: str) -> Counter[date]:
    return Counter(run.astimezone(ZoneInfo(zone)).date() for run in runs)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


NEW_YORK, LONDON, COLOMBO = "America/New_York", "Europe/London", "Asia/Colombo"


def test_daily_in_the_spring_gap_runs_an_hour_later_that_day_not_skipped():
    runs = beat_runs("30 2 * * *", NEW_YORK, at("2025-03-07T12:00"), at("2025-03-11T12:00"))
    assert local(runs, NEW_YORK) == [
        "03-08 02:30 EST",
        "03-09 03:30 EDT",  # 02:30 does not exist that day
        "03-10 02:30 EDT",
        "03-11 02:30 EDT",
    ]


def test_daily_at_a_time_that_occurs_twice_in_the_fall_runs_once():
    runs = beat_runs("30 1 * * *", NEW_YORK, at("2025-10-31T12:00"), at("2025-11-04T12:00"))
    assert local(runs, NEW_YORK) == [
        "11-01 01:30 EDT",
        "11-02 01:30 EDT",  # the first 01:30; the second (EST) is not a second run
        "11-03 01:30 EST",
        "11-04 01:30 EST",
    ]
    assert set(per_local_day(runs, NEW_YORK).values()) == {1}


@pytest.mark.parametrize(
    ("zone", "start", "end"),
    [
        (NEW_YORK, "2025-03-07T12:00", "2025-03-12T12:00"),
        (NEW_YORK, "2025-10-31T12:00", "2025-11-05T12:00"),
        (LONDON, "2025-03-28T12:00", "2025-04-02T12:00"),
        (LONDON, "2025-10-24T12:00", "2025-10-29T12:00"),
    ],
)
@pytest.mark.parametrize("cron", ["30 18 * * *", "0 2 * * *", "30 1 * * *", "0 0 * * *"])
def test_a_daily_schedule_runs_exactly_once_every_local_day_across_a_change(cron, zone, start, end):
    runs = beat_runs(cron, zone, at(start), at(end))
    days = per_local_day(runs, zone)
    assert len(days) == 5 and set(days.values()) == {1}, local(runs, zone)
    # At the local wall time asked for, except in the spring gap (an hour later).
    minute, hour = (int(field) for field in cron.split()[:2])
    for run in runs:
        wall = run.astimezone(ZoneInfo(zone))
        assert wall.minute == minute and wall.hour in (hour, hour + 1), local(runs, zone)


def test_an_evening_run_in_new_york_stays_at_1830_local_so_moves_in_utc():
    runs = beat_runs("30 18 * * *", NEW_YORK, at("2025-03-08T12:00"), at("2025-03-10T12:00"))
    assert [run.strftime("%m-%d %H:%M") for run in runs] == ["03-08 23:30", "03-09 22:30"]


def test_a_zone_without_daylight_saving_is_a_fixed_offset():
    runs = beat_runs("30 18 * * *", COLOMBO, at("2025-03-08T00:00"), at("2025-03-10T00:00"))
    assert [run.strftime("%m-%d %H:%M") for run in runs] == ["03-08 13:00", "03-09 13:00"]


def test_hourly_runs_once_per_wall_clock_hour_on_both_change_days():
    spring = beat_runs("0 * * * *", NEW_YORK, at("2025-03-09T04:30"), at("2025-03-09T09:30"))
    assert local(spring, NEW_YORK) == [
        "03-09 00:00 EST",
        "03-09 01:00 EST",
        "03-09 03:00 EDT",  # 02:00 does not exist: still one hour after 01:00
        "03-09 04:00 EDT",
        "03-09 05:00 EDT",
    ]
    fall = beat_runs("0 * * * *", NEW_YORK, at("2025-11-02T03:30"), at("2025-11-02T08:30"))
    assert local(fall, NEW_YORK) == [
        "11-02 00:00 EDT",
        "11-02 01:00 EDT",  # the repeated 01:00 (EST) does not run again
        "11-02 02:00 EST",
        "11-02 03:00 EST",
    ]


@pytest.mark.parametrize(
    ("cron", "zone", "start", "end"),
    [
        ("30 2 * * *", NEW_YORK, "2025-03-07T12:00", "2025-03-11T12:00"),
        ("30 1 * * *", NEW_YORK, "2025-10-31T12:00", "2025-11-04T12:00"),
        ("0 * * * *", NEW_YORK, "2025-03-09T04:30", "2025-03-09T09:30"),
        ("0 * * * *", NEW_YORK, "2025-11-02T03:30", "2025-11-02T08:30"),
        ("*/30 1-2 * * *", NEW_YORK, "2025-11-01T12:00", "2025-11-03T12:00"),
        ("30 1 * * sun", LONDON, "2025-03-20T12:00", "2025-04-10T12:00"),
        ("30 1 * * sun", LONDON, "2025-10-20T12:00", "2025-11-05T12:00"),
        ("30 18 * * *", COLOMBO, "2025-03-07T12:00", "2025-03-11T12:00"),
    ],
)
def test_the_admin_preview_lists_the_runs_beat_fires(cron, zone, start, end):
    fired = beat_runs(cron, zone, at(start), at(end))
    preview = cron_next_runs(cron, after=at(start), count=len(fired) + 1, tz=ZoneInfo(zone))
    # Compared in UTC: an ambiguous local time never equals another zone's (PEP 495).
    assert [run.astimezone(UTC) for run in preview if run < at(end)] == fired
