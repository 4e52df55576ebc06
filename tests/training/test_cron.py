from datetime import UTC, datetime

from training.cron import cron_next_runs

AFTER = datetime(2025, 1, 1, 3, 0, tzinfo=UTC)  # a Wednesday, 03:00


def test_daily_runs_start_after_the_given_moment():
    assert cron_next_runs("0 3 * * *", after=AFTER) == [
        datetime(2025, 1, 2, 3, 0, tzinfo=UTC),
        datetime(2025, 1, 3, 3, 0, tzinfo=UTC),
        datetime(2025, 1, 4, 3, 0, tzinfo=UTC),
    ]


def test_steps_ranges_and_day_names():
    assert cron_next_runs("*/30 9-10 * * mon-fri", after=AFTER, count=5) == [
        datetime(2025, 1, 1, 9, 0, tzinfo=UTC),
        datetime(2025, 1, 1, 9, 30, tzinfo=UTC),
        datetime(2025, 1, 1, 10, 0, tzinfo=UTC),
        datetime(2025, 1, 1, 10, 30, tzinfo=UTC),
        datetime(2025, 1, 2, 9, 0, tzinfo=UTC),
    ]


def test_sunday_is_zero():
    assert cron_next_runs("15 4 * * 0", after=AFTER, count=1) == [
        datetime(2025, 1, 5, 4, 15, tzinfo=UTC)
    ]


def test_day_of_month_and_weekday_must_both_match_like_celery():
    # The 13th that is a Friday: June 2025.
    assert cron_next_runs("0 0 13 * 5", after=AFTER, count=1) == [
        datetime(2025, 6, 13, 0, 0, tzinfo=UTC)
    ]


def test_a_leap_day_is_found_years_ahead():
    assert cron_next_runs("0 0 29 2 *", after=AFTER, count=1) == [
        datetime(2028, 2, 29, 0, 0, tzinfo=UTC)
    ]
