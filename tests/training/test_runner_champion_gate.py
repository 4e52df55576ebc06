"""The champion gate on a whole run: the candidate is judged against the champion on the
same held-out events (those newer than the champion's data), never its whole holdout.

The data: 4 clusters of 9 items; each of 40 users views every item of its cluster (the
older events), then one item of the next cluster (the newest event, after the
champion's data ends). Holding out each user's 3 most recent events leaves 2 cluster
items (which a fitted model finds) and the other-cluster item (which it cannot) in the
candidate's holdout. The champion is a hand-made model that ranks exactly each user's
other-cluster item first: on the events newer than its data it scores precision@2 0.5;
the candidate scores ~0.7 on its whole holdout but 0 on those newer events."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from recommender.models import Event, Item, ModelVersion, Recommender, VersionStatus
from tests.recommender.serving_helpers import ModelSpec, create_version
from training.models import Decision, RunStatus, Trigger
from training.runner import training_run_execute_now

pytestmark = pytest.mark.django_db

CLUSTERS, PER_CLUSTER, USERS_PER_CLUSTER = 4, 9, 10
KEY = "precision@2"


def _item(n: int) -> str:
    return f"item-{n}"


@pytest.fixture
def world(artifact_dir):
    """Events, the recommender and the hand-made champion; returns the recommender."""
    rng = np.random.default_rng(3)
    now = timezone.now()
    champion_data_end = now - timedelta(days=1)
    items = {n: Item.objects.create(external_id=_item(n)) for n in range(CLUSTERS * PER_CLUSTER)}
    events, users, newest_item = [], [], {}
    for cluster in range(CLUSTERS):
        for u in range(USERS_PER_CLUSTER):
            user = f"user-{cluster}-{u}"
            users.append(user)
            own = cluster * PER_CLUSTER + rng.permutation(PER_CLUSTER)
            for step, n in enumerate(own):
                stamp = champion_data_end - timedelta(days=10) + timedelta(hours=int(step))
                events.append((user, int(n), stamp))
            other = ((cluster + 1) % CLUSTERS) * PER_CLUSTER + int(rng.integers(PER_CLUSTER))
            newest_item[user] = other
            events.append((user, other, now - timedelta(hours=12)))
    Event.objects.bulk_create(
        Event(
            event_id=f"e{n}",
            user_external_id=user,
            item=items[item],
            event_type="view",
            timestamp=stamp,
        )
        for n, (user, item, stamp) in enumerate(events)
    )
    n_items = CLUSTERS * PER_CLUSTER
    identity = np.eye(n_items, dtype=np.float32)
    champion = create_version(
        ModelSpec(
            users=users,
            items=[_item(n) for n in range(n_items)],
            user_factors=np.stack([identity[newest_item[user]] for user in users]),
            item_factors=identity,
            category_factors={"unused": np.zeros(n_items, np.float32)},
            categories={},
            seen={},
            popularity=np.ones(n_items, np.float32),
        )
    )
    ModelVersion.objects.filter(pk=champion.pk).update(
        data_window={"start": None, "end": champion_data_end.isoformat()}
    )
    recommender = Recommender.objects.get(name="default")
    recommender.algorithm = "lightfm"
    recommender.event_weights = {"view": 1.0}
    recommender.holdout_fraction = 0.3
    recommender.eval_k = 2
    recommender.hyperparameters = {"lightfm": {"epochs": 30, "no_components": 8}}
    recommender.num_threads = 1
    recommender.use_item_features = False
    recommender.champion_tolerance = 0.02
    recommender.save()
    return recommender


def test_a_candidate_better_on_its_holdout_but_worse_on_the_champions_is_rejected(world):
    run = training_run_execute_now(recommender=world, trigger=Trigger.CLI)
    assert run.status == RunStatus.SUCCEEDED, run.error
    metrics = run.metrics
    candidate, champion = metrics["candidate"][KEY], metrics["champion"][KEY]
    same_holdout = metrics["candidate_on_champion_holdout"][KEY]
    # The shape: better than the champion on its own holdout, worse on the
    # champion's (where the champion scores 1 hit in 2).
    assert candidate > champion == 0.5 > same_holdout, (candidate, champion, same_holdout)
    assert run.decision == Decision.REJECTED, run.decision_reason
    assert "not_worse_than_champion" in run.decision_reason
    assert metrics["champion_holdout_events"] == CLUSTERS * USERS_PER_CLUSTER
    gate = next(g for g in run.gate_results if g["name"] == "not_worse_than_champion")
    assert gate["observed"] == pytest.approx(same_holdout)
    assert gate["threshold"] == pytest.approx(champion * 0.98)
    assert ModelVersion.objects.get(status=VersionStatus.ACTIVE).number == 1
