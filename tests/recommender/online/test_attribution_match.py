"""The PostgreSQL matcher (one statement per batch) against the rules in memory, on
random lists and events built to hit the edges: lists sharing a time, an item twice in
one list, lists for no user (similar items), events exactly at the window's and the
skew's edges and a microsecond past them, ids naming another user's list, an unknown
list or no UUID at all."""

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from recommender.online.attribution_match import events_match_python, events_match_sql
from recommender.online.attribution_rules import EventFacts
from recommender.online.ids import recommendation_id_parse
from recommender.online.models import ServedList
from tests.factories import RecommenderFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WINDOW = timedelta(hours=1)
SKEW = timedelta(minutes=5)
USERS = [f"u{n}" for n in range(12)]
ITEMS = [f"i{n}" for n in range(10)]


def served_lists(rng: random.Random, recommender_id: int) -> list[ServedList]:
    lists = []
    for _ in range(300):
        lists.append(
            ServedList(
                id=uuid.UUID(int=rng.getrandbits(128)),
                recommender_id=recommender_id,
                model_version=rng.choice([None, *range(1, 2000)]),  # tells lists apart
                experiment_id=rng.choice([None, 7]),
                arm=rng.choice(["", "control", "b"]),
                user_external_id=rng.choice([*USERS, ""]),
                kind="recommendations",
                first_position=rng.choice([1, 1, 4]),
                item_ids=[rng.choice(ITEMS) for _ in range(rng.randint(0, 5))],
                sources=[],
                created_at=T0 + timedelta(minutes=10 * rng.randint(0, 24)),  # ties
            )
        )
    return lists


def events(rng: random.Random, lists: list[ServedList]) -> list[EventFacts]:
    facts = []
    for _ in range(1500):
        base = rng.choice(lists)
        at = base.created_at + rng.choice(
            [
                timedelta(0),
                WINDOW,
                WINDOW + timedelta(microseconds=1),
                -SKEW,
                -SKEW - timedelta(microseconds=1),
                timedelta(minutes=rng.randint(-20, 90)),
            ]
        )
        sent = rng.choice(
            [None, None, str(base.id), str(rng.choice(lists).id), str(uuid.uuid4()), "nope"]
        )
        facts.append(
            EventFacts(
                user_id=rng.choice([base.user_external_id or rng.choice(USERS), *USERS[:3]]),
                item_id=rng.choice([*base.item_ids, *ITEMS[:3]] or ITEMS),
                timestamp=at,
                recommendation_id=recommendation_id_parse(sent) if sent else None,
                names_a_list=bool(sent),
            )
        )
    return facts


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_sql_matcher_gives_the_rules_answers(postgres, seed):
    rng = random.Random(seed)
    recommender = RecommenderFactory(name="default")
    lists = served_lists(rng, recommender.pk)
    ServedList.objects.bulk_create(lists)
    facts = events(rng, lists)

    in_sql = events_match_sql(facts, window=WINDOW, skew=SKEW)
    in_memory = events_match_python(facts, window=WINDOW, skew=SKEW)

    assert in_sql == in_memory
    attributed = sum(where is not None for where, _ in in_memory)
    unknown = sum(unknown_id for _, unknown_id in in_memory)
    assert 300 < attributed < 1400 and unknown > 100  # the data reaches every rule
