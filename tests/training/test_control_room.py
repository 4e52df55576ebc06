"""The admin index's summary per recommender: active version and age, last run and its
outcome, next scheduled run in the schedule's zone, online CTR of the last days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from recommender.models import ModelVersion
from recommender.online.models import OnlineHourly
from recommender.services import model_version_promote
from tests.factories import ModelVersionFactory, RecommenderFactory, TrainingRunFactory
from training.control_room import CTR_DAYS, control_room_get
from training.models import Decision, RunStatus, TrainingRun

pytestmark = pytest.mark.django_db

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


def summary_of(name: str):
    return next(row for row in control_room_get(now=NOW) if row.recommender.name == name)


def hourly(recommender, *, hours_ago: float, impressions: int, clicks: int) -> None:
    OnlineHourly.objects.create(
        hour=NOW - timedelta(hours=hours_ago),
        recommender=recommender,
        model_version=1,
        position=1,
        impressions=impressions,
        clicks=clicks,
    )


@pytest.fixture
def shop(artifact_dir):
    shop = RecommenderFactory(
        name="shop",
        schedule_cron="30 18 * * *",
        schedule_timezone="Asia/Colombo",
        schedule_enabled=True,
    )
    version = ModelVersionFactory(recommender=shop)
    model_version_promote(version=version, reason="test")
    ModelVersion.objects.filter(pk=version.pk).update(created_at=NOW - timedelta(hours=50))
    for status, decision, hours_ago in (
        (RunStatus.SUCCEEDED, Decision.PROMOTED, 50),
        (RunStatus.FAILED, Decision.NONE, 2),
    ):
        run = TrainingRunFactory(recommender=shop, status=status, decision=decision)
        TrainingRun.objects.filter(pk=run.pk).update(created_at=NOW - timedelta(hours=hours_ago))
    return shop


def test_a_recommender_shows_its_active_version_last_run_next_run_and_ctr(shop, settings):
    settings.RECSITE_MODEL_STALE_AFTER_HOURS = 48
    hourly(shop, hours_ago=1, impressions=300, clicks=12)
    hourly(shop, hours_ago=30, impressions=100, clicks=4)
    hourly(shop, hours_ago=24 * CTR_DAYS + 1, impressions=1000, clicks=900)  # too old

    row = summary_of("shop")

    assert (row.active.number, row.stale) == (1, True)
    assert row.last_run.status == RunStatus.FAILED
    # 18:30 in Colombo (UTC+5:30) is 13:00 UTC: the next one is today's.
    assert row.next_run.isoformat() == "2025-03-14T18:30:00+05:30"
    assert (row.ctr.successes, row.ctr.trials, row.ctr_percent) == (16, 400, 4.0)


def test_a_new_recommender_has_nothing_yet():
    RecommenderFactory(name="new")
    row = summary_of("new")
    assert (row.active, row.last_run, row.next_run, row.ctr, row.ctr_percent) == (
        None,
        None,
        None,
        None,
        None,
    )


def test_the_summary_reads_a_fixed_number_of_queries(shop, django_assert_max_num_queries):
    for name in ("a", "b", "c", "d"):
        other = RecommenderFactory(name=name)
        TrainingRunFactory(recommender=other, status=RunStatus.SUCCEEDED)
        hourly(other, hours_ago=1, impressions=10, clicks=1)
    with django_assert_max_num_queries(4):
        rows = control_room_get(now=NOW)
        statuses = {row.recommender.name: row.last_run.status for row in rows if row.last_run}
    assert statuses == {**dict.fromkeys("abcd", RunStatus.SUCCEEDED), "shop": RunStatus.FAILED}
