"""GET /api/v1/online-metrics: the hourly aggregates by hour, day or in total, per version,
arm and position, with Wilson intervals; bounded ranges; scope training:write."""

from datetime import UTC, datetime, timedelta

import pytest

from recommender.models import Scope
from recommender.online.models import OnlineHourly
from recommender.online.selectors import Granularity, online_metrics, online_metrics_by_version
from tests.factories import RecommenderFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
RANGE = {"start": "2025-03-01T00:00:00Z", "end": "2025-03-03T00:00:00Z"}


@pytest.fixture
def recommender():
    recommender = RecommenderFactory(name="default")
    for hour, version, position, impressions, clicks in [
        (T0, 1, 1, 100, 10),
        (T0, 1, 2, 100, 5),
        (T0 + timedelta(hours=1), 1, 1, 50, 5),
        (T0 + timedelta(days=1), 2, 1, 200, 40),
    ]:
        OnlineHourly.objects.create(
            recommender=recommender,
            hour=hour,
            model_version=version,
            position=position,
            lists=impressions if position == 1 else 0,
            impressions=impressions,
            clicks=clicks,
            conversions=clicks // 5,
        )
    return recommender


@pytest.fixture
def trainer(make_api_client):
    return make_api_client(Scope.TRAINING_WRITE)


def test_daily_figures_add_up_hours_and_positions_per_version(recommender):
    rows = online_metrics(
        recommender=recommender, start=T0 - timedelta(hours=10), end=T0 + timedelta(days=2)
    )
    assert [(r.period.day, r.model_version, r.lists, r.impressions, r.clicks) for r in rows] == [
        (1, 1, 150, 250, 20),
        (2, 2, 200, 200, 40),
    ]
    assert rows[0].ctr.value == pytest.approx(0.08)
    assert rows[0].ctr.low < 0.08 < rows[0].ctr.high


def test_hourly_figures_by_position(recommender):
    rows = online_metrics(
        recommender=recommender,
        start=T0,
        end=T0 + timedelta(hours=2),
        granularity=Granularity.HOUR,
        by_position=True,
    )
    assert [(r.period.hour, r.position, r.clicks) for r in rows] == [
        (10, 1, 10),
        (10, 2, 5),
        (11, 1, 5),
    ]


def test_by_version_totals_for_the_compare_page(recommender):
    figures = online_metrics_by_version(recommender=recommender, numbers=[1, 2, 3])
    assert {n: f.clicks for n, f in figures.items()} == {1: 20, 2: 40}


def test_the_api_returns_rates_with_intervals(recommender, trainer):
    response = trainer.get("/api/v1/online-metrics", {**RANGE, "granularity": "total"})
    assert response.status_code == 200, response.content
    rows = response.json()["rows"]
    assert [(r["model_version"], r["impressions"], r["clicks"]) for r in rows] == [
        (1, 250, 20),
        (2, 200, 40),
    ]
    ctr = rows[1]["ctr"]
    assert ctr["value"] == pytest.approx(0.2) and ctr["low"] < 0.2 < ctr["high"]
    assert rows[1]["conversion_rate"]["successes"] == 8


def test_the_api_filters_by_version_and_position(recommender, trainer):
    response = trainer.get(
        "/api/v1/online-metrics",
        {**RANGE, "version": 1, "by_position": "true", "granularity": "hour"},
    )
    assert [(r["position"], r["clicks"]) for r in response.json()["rows"]] == [
        (1, 10),
        (2, 5),
        (1, 5),
    ]


def test_an_unbounded_range_is_a_400(recommender, trainer):
    response = trainer.get(
        "/api/v1/online-metrics",
        {"granularity": "hour", "start": "2025-01-01T00:00:00Z", "end": "2025-03-01T00:00:00Z"},
    )
    assert response.status_code == 400
    assert "start" in response.json()["error"]["detail"]


def test_online_metrics_need_the_training_scope(recommender, make_api_client):
    assert (
        make_api_client(Scope.RECOMMENDATIONS_READ).get("/api/v1/online-metrics").status_code == 403
    )


def test_the_schema_documents_the_online_endpoints(trainer):
    paths = trainer.get("/api/schema/", {"format": "json"}).json()["paths"]
    assert {
        "/api/v1/online-metrics",
        "/api/v1/experiments",
        "/api/v1/experiments/{experiment_id}",
    } <= set(paths)
    assert "/api/v1/experiments/{experiment_id}/stop" in paths
