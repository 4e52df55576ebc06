"""The admin dashboard: active version and staleness, runs, charts, events per day,
serving processes, the next scheduled run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from recommender.models import EventIngestDay, ModelVersion, PromotionEvent
from recommender.online.models import OnlineHourly
from recommender.online.selectors import online_daily_totals
from recommender.selectors import events_ingested_per_day
from recommender.services import model_version_promote, model_version_rollback
from recommender.services.ingest import event_batch_ingest
from tests.factories import (
    ModelVersionFactory,
    RecommenderFactory,
    TrainingRunFactory,
)
from training.dashboard import ONLINE_DAYS, promotion_marks
from training.models import RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    recommender = RecommenderFactory(name="shop", schedule_cron="0 3 * * *", schedule_enabled=True)
    for number in (1, 2):
        version = ModelVersionFactory(recommender=recommender)
        TrainingRunFactory(
            recommender=recommender,
            status=RunStatus.SUCCEEDED,
            decision="candidate",
            version=version,
            started_at=timezone.now() - timedelta(minutes=5),
            finished_at=timezone.now() - timedelta(minutes=5 - number),
            metrics={
                "candidate": {"precision@10": 0.1 * number},
                "popularity": {"precision@10": 0.05},
            },
        )
    model_version_promote(version=version, reason="test")
    return recommender


def test_dashboard_shows_active_version_charts_runs_and_next_run(admin_client, shop):
    now = timezone.now()
    event_batch_ingest(
        raw_events=[
            {"event_id": f"e{n}", "user_id": "u", "item_id": "i", "type": "view",
             "timestamp": now.isoformat()}
            for n in range(3)
        ],
        now=now,
    )  # fmt: skip
    body = admin_client.get(reverse("admin:dashboard")).content.decode()
    assert "v2" in body
    assert body.count("<svg") >= 3  # metric chart, duration chart, events per day
    assert "shop: precision@10 by version" in body
    assert "candidate (the version)" in body and "popularity baseline" in body
    assert "run durations" in body
    assert "03:00 UTC" in body
    assert "3 events ingested" in body
    assert 'id="serving-processes"' in body
    assert 'data-stale="false"' in body


def test_an_old_active_version_is_flagged_stale(admin_client, shop, settings):
    settings.RECSITE_MODEL_STALE_AFTER_HOURS = 24
    ModelVersion.objects.filter(status="active").update(
        created_at=timezone.now() - timedelta(days=2)
    )
    body = admin_client.get(reverse("admin:dashboard")).content.decode()
    assert 'data-stale="true"' in body and "older than 24 h" in body


def test_dashboard_lists_what_this_process_serves(admin_client, shop):
    # The active artifact fails its recorded checksum: the process serves no model and says why.
    ModelVersion.objects.filter(recommender=shop, number=2).update(artifact_sha256="f" * 64)
    body = admin_client.get(reverse("admin:dashboard")).content.decode()
    assert "this web process only" in body
    assert "not the active version" in body


def test_the_admin_index_links_to_the_dashboard(admin_client):
    body = admin_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:dashboard") in body


def test_dashboard_needs_staff(client):
    response = client.get(reverse("admin:dashboard"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_events_ingested_per_day_counts_the_window_zero_filled():
    now = datetime(2025, 3, 10, 12, tzinfo=UTC)
    for days_ago, n in ((20, 2), (3, 4), (0, 1)):
        EventIngestDay.objects.create(day=(now - timedelta(days=days_ago)).date(), events=n)
    per_day = events_ingested_per_day(days=7, now=now)
    assert [d.isoformat() for d, _ in per_day][0] == "2025-03-04"
    assert dict(per_day) == {
        (now - timedelta(days=k)).date(): {3: 4, 0: 1}.get(k, 0) for k in range(7)
    }


def test_events_ingested_per_day_with_no_events():
    per_day = events_ingested_per_day(days=3, now=datetime(2025, 3, 10, tzinfo=UTC))
    assert [n for _, n in per_day] == [0, 0, 0]


def _hourly(recommender, hour, *, version, impressions, clicks, position=1):
    return OnlineHourly.objects.create(
        recommender=recommender,
        hour=hour,
        model_version=version,
        position=position,
        lists=impressions // 10 if position == 1 else 0,
        impressions=impressions,
        clicks=clicks,
    )


def test_dashboard_charts_online_metrics_with_promotions_and_rollbacks_marked(
    admin_client, shop, django_assert_max_num_queries
):
    now = timezone.now()
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    _hourly(shop, this_hour - timedelta(days=2), version=1, impressions=400, clicks=20)
    _hourly(shop, this_hour - timedelta(days=1), version=2, impressions=500, clicks=40)
    _hourly(shop, this_hour - timedelta(days=1), version=2, impressions=300, clicks=9, position=2)
    v1 = ModelVersion.objects.get(recommender=shop, number=1)
    model_version_promote(version=v1, reason="back to v1 first")
    v2 = ModelVersion.objects.get(recommender=shop, number=2)
    model_version_promote(version=v2, reason="again")
    model_version_rollback(recommender=shop, reason="worse online")
    other = RecommenderFactory(name="other")  # nothing served: says so
    with django_assert_max_num_queries(40):
        body = admin_client.get(reverse("admin:dashboard")).content.decode()
    assert 'id="online-shop"' in body and 'id="online-other"' in body
    assert "shop: impressions per day" in body
    assert "shop: CTR (95 % interval shaded) and conversion rate per day" in body
    assert 'class="band"' in body
    # Every promotion and the rollback, on both of shop's charts.
    assert body.count("promote v2</title>") == 4
    assert body.count("promote v1</title>") == 2
    assert body.count("rollback to v1</title>") == 2
    assert "impressions at " in body and ": 800</title>" in body  # the day's two positions
    others = body[body.index(f'id="online-{other.name}"') :]
    assert others.count("Nothing served and attributed in this period.") == 2


def test_the_dashboard_query_count_does_not_grow_with_the_days_or_promotions(
    admin_client, shop, django_assert_max_num_queries
):
    with CaptureQueriesContext(connection) as before:
        admin_client.get(reverse("admin:dashboard"))
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for day in range(ONLINE_DAYS):
        _hourly(shop, hour - timedelta(days=day), version=2, impressions=100, clicks=day)
    v1, v2 = ModelVersion.objects.filter(recommender=shop).order_by("number")
    model_version_promote(version=v1, reason="p")
    for _ in range(3):
        model_version_promote(version=v2, reason="p")
        model_version_rollback(recommender=shop, reason="r")
    with django_assert_max_num_queries(len(before)):
        admin_client.get(reverse("admin:dashboard"))


def test_online_daily_totals_are_zero_filled_utc_days_summed_over_versions_and_arms():
    shop = RecommenderFactory(name="shop")
    now = datetime(2024, 3, 10, 12, 30, tzinfo=UTC)
    _hourly(shop, datetime(2024, 3, 10, 0, tzinfo=UTC), version=1, impressions=100, clicks=5)
    _hourly(shop, datetime(2024, 3, 10, 11, tzinfo=UTC), version=2, impressions=100, clicks=15)
    _hourly(shop, datetime(2024, 3, 8, 23, tzinfo=UTC), version=1, impressions=50, clicks=0)
    _hourly(
        shop, datetime(2024, 3, 7, 23, tzinfo=UTC), version=1, impressions=7, clicks=7
    )  # before
    days = online_daily_totals(recommender_ids=[shop.pk], days=3, now=now)[shop.pk]
    assert [d.day.isoformat() for d in days] == ["2024-03-08", "2024-03-09", "2024-03-10"]
    assert [d.impressions for d in days] == [50, 0, 200]
    assert days[2].ctr.value == pytest.approx(0.1)
    assert days[2].ctr.low < 0.1 < days[2].ctr.high
    assert days[1].ctr.value is None


def test_promotion_marks_sit_at_their_moment_on_the_daily_axis(shop):
    first_day = datetime(2024, 3, 8, tzinfo=UTC)
    events = list(PromotionEvent.objects.filter(recommender=shop))
    PromotionEvent.objects.filter(pk=events[0].pk).update(
        created_at=datetime(2024, 3, 9, 18, tzinfo=UTC)
    )
    event = PromotionEvent.objects.select_related("to_version").get(pk=events[0].pk)
    (mark,) = promotion_marks([event], first_day=first_day)
    assert mark.x == pytest.approx(1.25)  # day 1's point is its noon; 18:00 is a quarter on
    assert mark.label == "promote v2" and not mark.dashed
