"""Whole runs of the non-LightFM families, in process (real database, real fits): each
trains, is evaluated next to popularity and a champion of any family, gated, and writes
an artifact of its family."""

from datetime import timedelta

import numpy as np
import pytest
from django.db.models import Max
from django.utils import timezone

from recommender.artifact_store import local_artifact_path
from recommender.artifacts import load_artifact
from recommender.models import Event, Item, ModelVersion, Recommender, VersionStatus
from training.models import Decision, RunStatus, Trigger
from training.runner import training_run_execute_now

pytestmark = pytest.mark.django_db


@pytest.fixture
def groups(artifact_dir) -> Recommender:
    """Three taste groups (a user views about half of their group's 15 items and now and
    then another), over 20 days: every personalised family beats popularity here."""
    rng = np.random.default_rng(5)
    items = [Item.objects.create(external_id=f"item-{n}") for n in range(45)]
    start = timezone.now() - timedelta(days=20)
    events = []
    for u in range(90):
        same = (np.arange(45) % 3) == (u % 3)
        taken = np.flatnonzero(rng.random(45) < np.where(same, 0.5, 0.03))
        for n in taken:
            stamp = start + timedelta(minutes=int(rng.integers(20 * 24 * 60)))
            events.append(
                Event(
                    event_id=f"e{len(events)}",
                    user_external_id=f"user-{u}",
                    item=items[n],
                    event_type="view",
                    timestamp=stamp,
                )
            )
    Event.objects.bulk_create(events)
    recommender = Recommender.objects.get(name="default")
    recommender.use_item_features = False
    recommender.save()
    return recommender


def run_now(recommender, **options):
    return training_run_execute_now(recommender=recommender, trigger=Trigger.CLI, options=options)


@pytest.mark.parametrize(
    ("family", "arrays"),
    [
        ("ease", {"similarity_data", "similarity_indices", "similarity_indptr"}),
        ("itemknn", {"similarity_data", "similarity_indices", "similarity_indptr"}),
        ("als", {"user_embeddings", "user_biases", "item_embeddings", "item_biases"}),
        ("svd", {"user_embeddings", "user_biases", "item_embeddings", "item_biases"}),
    ],
)
def test_a_run_of_each_family_writes_its_artifact_and_records_its_parameters(
    groups, family, arrays
):
    run = run_now(groups, algorithm=family)
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.decision == Decision.PROMOTED, run.decision_reason
    artifact = load_artifact(local_artifact_path(run.version.artifact_uri))
    assert artifact.family == family
    assert set(artifact.arrays) == arrays | {"popularity", "seen_indptr", "seen_indices"}
    assert artifact.hyperparameters == run.hyperparameters == run.version.hyperparameters
    assert run.hyperparameters["family"] == family
    assert f"fit {family}: step" in run.log


def test_popularity_without_decay_skips_the_popularity_gate_saying_why(groups):
    run = run_now(groups, algorithm="popularity")
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.decision == Decision.PROMOTED, run.decision_reason
    gate = next(g for g in run.gate_results if g["name"] == "beats_popularity")
    assert (gate["passed"], gate["skipped"]) == (True, True)
    assert "the candidate is the popularity baseline itself" in gate["message"]
    assert "beats_popularity: Skipped: the candidate is the popularity baseline" in run.log
    assert run.hyperparameters == {
        "family": "popularity",
        "half_life_days": 0.0,
        "num_threads": 2,
        "random_seed": 42,
    }


def test_popularity_with_a_decay_is_gated_against_the_baseline(groups):
    run = run_now(groups, algorithm="popularity", overrides={"half_life_days": 3.0})
    assert run.status == RunStatus.SUCCEEDED, run.error
    gate = next(g for g in run.gate_results if g["name"] == "beats_popularity")
    assert not gate["skipped"]


def test_an_item_item_run_beats_popularity_and_takes_its_overrides(recommender):
    run = run_now(recommender, algorithm="ease", overrides={"lambda": 50.0, "top_k": 10})
    assert run.status == RunStatus.SUCCEEDED, run.error
    metrics = run.metrics
    assert metrics["candidate"]["precision@10"] > metrics["popularity"]["precision@10"]
    artifact = load_artifact(local_artifact_path(run.version.artifact_uri))
    assert np.diff(artifact.arrays["similarity_indptr"]).max() <= 10
    assert (artifact.hyperparameters["lambda"], artifact.hyperparameters["top_k"]) == (50.0, 10)


def test_recency_weighting_changes_what_an_item_item_run_measures(recommender):
    plain = run_now(recommender, algorithm="itemknn", no_promote=True)
    weighted = run_now(
        recommender, algorithm="itemknn", no_promote=True, overrides={"recency_half_life": 0.1}
    )
    assert plain.status == weighted.status == RunStatus.SUCCEEDED
    assert plain.metrics["candidate"] != weighted.metrics["candidate"]


def test_ease_above_its_item_limit_fails_the_run_naming_the_limit(recommender, settings):
    settings.RECSITE_EASE_MAX_ITEMS = 50  # the demo data has 80 items
    run = run_now(recommender, algorithm="ease")
    assert run.status == RunStatus.FAILED
    assert run.error.startswith("fit: FamilyLimitExceeded: EASE refuses 80 items")
    assert "RECSITE_EASE_MAX_ITEMS = 50" in run.error
    assert not ModelVersion.objects.exists()


def test_a_champion_of_another_family_is_scored_as_its_family(recommender):
    recommender.champion_no_overlap_policy = "hold"
    recommender.save()
    champion = run_now(recommender, algorithm="ease").version
    # As if the champion had been trained three days before the newest events.
    newest = Event.objects.aggregate(newest=Max("timestamp"))["newest"]
    ModelVersion.objects.filter(pk=champion.pk).update(
        data_window={"end": (newest - timedelta(days=3)).isoformat()}
    )
    run = run_now(recommender, algorithm="als")
    assert run.status == RunStatus.SUCCEEDED, run.error
    metrics = run.metrics
    assert metrics["champion_version"] == champion.number
    assert metrics["champion_holdout_events"] > 0
    assert metrics["champion"]["precision@10"] > 0  # the item-item champion found some
    assert "candidate_on_champion_holdout" in metrics
    champion.refresh_from_db()
    assert champion.status in (VersionStatus.ACTIVE, VersionStatus.RETIRED)
