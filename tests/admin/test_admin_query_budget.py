"""Every admin list page of the project's models, the dashboard and the version compare
page answer with a bounded number of queries, the same with 10x the rows (nothing per
row, no N+1), and never count a whole big table: at 10M events a full ``COUNT(*)`` or a
per-row query is seconds."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from recommender.models import DataErasure, ErasureKind, Event
from tests.factories import (
    EventFactory,
    ItemFactory,
    ModelVersionFactory,
    PromotionEventFactory,
    RecommenderFactory,
    TrainingRunFactory,
    UserProfileFactory,
)
from training.models import RunStatus

pytestmark = pytest.mark.django_db

# The admin's own queries (session, user, permissions, content types) plus the page's.
BUDGET = 16
OUR_APPS = {"recommender", "training"}


def _our_models() -> list[str]:
    return sorted(
        f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"
        for model in admin.site._registry
        if model._meta.app_label in OUR_APPS
    )


def grow(times: int) -> list:
    """``times`` rows of each listed kind (events, items, profiles, erasures, versions,
    promotions, runs); returns the versions."""
    recommender = RecommenderFactory(name="shop")
    item = ItemFactory()
    EventFactory.create_batch(times, item=item)
    ItemFactory.create_batch(times)
    UserProfileFactory.create_batch(times)
    DataErasure.objects.bulk_create(
        DataErasure(kind=ErasureKind.EXPIRED, events_deleted=n) for n in range(times)
    )
    versions = ModelVersionFactory.create_batch(times, recommender=recommender)
    for version in versions:
        PromotionEventFactory(recommender=recommender, to_version=version)
        TrainingRunFactory(recommender=recommender, version=version, status=RunStatus.SUCCEEDED)
    return versions


def queries_of(client, url: str) -> list[str]:
    client.get(url)  # warm the per-process caches (content types, site)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return [query["sql"] for query in captured.captured_queries]


@pytest.mark.parametrize("name", _our_models())
def test_list_pages_stay_within_budget_as_rows_grow(admin_client, name):
    url = reverse(name)
    grow(3)
    few = queries_of(admin_client, url)
    assert len(few) <= BUDGET, few
    grow(30)
    assert len(queries_of(admin_client, url)) <= len(few)


def test_the_dashboard_stays_within_budget_as_rows_grow(admin_client):
    url = reverse("admin:dashboard")
    grow(3)
    few = queries_of(admin_client, url)
    assert len(few) <= BUDGET, few
    grow(30)
    assert len(queries_of(admin_client, url)) <= len(few)
    # events per day: read from the per-day counts, never from the events
    assert not [sql for sql in few if 'FROM "recommender_event"' in sql], few


def test_the_compare_page_stays_within_budget(admin_client):
    versions = grow(6)
    url = reverse("admin:recommender_modelversion_compare")
    two = queries_of(admin_client, f"{url}?ids={versions[0].pk},{versions[1].pk}")
    six = queries_of(admin_client, f"{url}?ids={','.join(str(v.pk) for v in versions)}")
    assert len(two) <= BUDGET, two
    assert len(six) <= len(two), "one query per version"


UNBOUNDED_COUNT = re.compile(r"COUNT\(", re.IGNORECASE)


@pytest.mark.parametrize("search", ["", "?q=alice", "?o=1"])
def test_the_event_list_never_counts_the_whole_table(admin_client, search, monkeypatch):
    # more rows than a page: Django reads a list that fits on one page without a LIMIT
    monkeypatch.setattr(admin.site._registry[Event], "list_per_page", 2)
    grow(5)
    EventFactory.create_batch(3, user_external_id="alice")
    table = Event._meta.db_table
    sqls = queries_of(admin_client, reverse("admin:recommender_event_changelist") + search)
    counts = [sql for sql in sqls if UNBOUNDED_COUNT.search(sql) and table in sql]
    assert counts, "the capped paginator's count"
    assert all("LIMIT" in sql.upper() for sql in counts), counts
    # and no other query reads the table without a LIMIT (a date hierarchy, a filter's
    # distinct values)
    unbounded = [sql for sql in sqls if f'FROM "{table}"' in sql and "LIMIT" not in sql.upper()]
    assert not unbounded, unbounded
