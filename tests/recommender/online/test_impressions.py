"""Counting a batch of served lists: the PostgreSQL statements against the count in
Python on random lists (empty ones, experiments, lists for no user, shared times), and
the batch boundary that never splits lists sharing a creation time."""

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from recommender.online.impressions import ListsCount, _count_python, _count_sql, lists_batch
from recommender.online.models import ServedList
from tests.factories import RecommenderFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def make_lists(rng: random.Random, count: int, recommender_id: int) -> None:
    ServedList.objects.bulk_create(
        ServedList(
            id=uuid.UUID(int=rng.getrandbits(128)),
            recommender_id=recommender_id,
            model_version=rng.choice([None, 1, 2]),
            experiment_id=rng.choice([None, None, 7, 8]),
            arm=rng.choice(["", "control", "b"]),
            user_external_id=rng.choice(["", "u1", "u2", "u3"]),
            kind="recommendations",
            first_position=rng.choice([1, 1, 11]),
            item_ids=[f"i{rng.randint(0, 20)}" for _ in range(rng.randint(0, 6))],
            sources=[],
            created_at=T0 + timedelta(minutes=20 * rng.randint(0, 12)),
        )
        for _ in range(count)
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_the_sql_count_equals_the_python_count(postgres, seed):
    make_lists(random.Random(seed), 500, RecommenderFactory(name="default").pk)
    batch = ServedList.objects.all()
    in_sql = ListsCount(lists=500, done_until=T0)
    in_python = ListsCount(lists=500, done_until=T0)
    _count_sql(batch, in_sql)
    _count_python(batch, in_python)
    assert in_sql.hourly == in_python.hourly
    assert in_sql.per_user == in_python.per_user
    assert len(in_python.hourly) > 20 and len(in_python.per_user) > 5


def test_a_batch_never_splits_lists_sharing_a_time():
    recommender = RecommenderFactory(name="default")
    times = [T0, T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=1), T0 + timedelta(2)]
    ServedList.objects.bulk_create(
        ServedList(id=uuid.uuid4(), recommender=recommender, kind="similar", created_at=at)
        for at in times
    )
    until = T0 + timedelta(days=3)
    first = lists_batch(after=None, until=until, limit=3)
    assert sorted(first.values_list("created_at", flat=True)) == [T0, T0]
    only_ties = lists_batch(after=T0, until=until, limit=1)
    assert only_ties.count() == 2  # more than the limit: both lists of that second
    assert lists_batch(after=T0 + timedelta(seconds=1), until=until, limit=3).count() == 1
