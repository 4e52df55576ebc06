"""The admin dashboard: active version and staleness, runs, charts, events per day,
serving processes, the next scheduled run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from recommender.models import Event, ModelVersion
from recommender.selectors import events_ingested_per_day
from recommender.services import model_version_promote
from tests.factories import (
    EventFactory,
    ModelVersionFactory,
    RecommenderFactory,
    TrainingRunFactory,
)
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
    EventFactory.create_batch(3)
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
        ids = [e.pk for e in EventFactory.create_batch(n)]
        Event.objects.filter(pk__in=ids).update(ingested_at=now - timedelta(days=days_ago))
    per_day = events_ingested_per_day(days=7, now=now)
    assert [d.isoformat() for d, _ in per_day][0] == "2025-03-04"
    assert dict(per_day) == {
        (now - timedelta(days=k)).date(): {3: 4, 0: 1}.get(k, 0) for k in range(7)
    }


def test_events_ingested_per_day_with_no_events():
    per_day = events_ingested_per_day(days=3, now=datetime(2025, 3, 10, tzinfo=UTC))
    assert [n for _, n in per_day] == [0, 0, 0]
