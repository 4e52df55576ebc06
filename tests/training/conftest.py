"""Fixtures shared by the training tests: a small generated dataset, in process or for
tests that run a real Celery worker."""

from __future__ import annotations

import pytest

from recommender.models import Recommender
from recommender.services import demo_data_generate


@pytest.fixture
def worker_recommender(worker_env) -> Recommender:
    """The ``default`` recommender over a small generated dataset, set to train in a few
    seconds (5 epochs, 16 components), for tests that hand runs to a worker process."""
    demo_data_generate(users=200, items=100, events=12_000, seed=11, days=28)
    # get_or_create: a transactional test's flush also removes the migration's row.
    recommender, _ = Recommender.objects.get_or_create(name="default")
    recommender.algorithm = "lightfm"  # a fresh install's default is auto
    recommender.hyperparameters = {"lightfm": {"epochs": 5, "no_components": 16}}
    # Successive runs share their data, so no held-out event is newer than the champion:
    # these tests are about workers, not the gate, so let such a run be promoted.
    recommender.champion_no_overlap_policy = "skip"
    recommender.save()
    return recommender


@pytest.fixture
def recommender(artifact_dir) -> Recommender:
    """The ``default`` recommender over a small generated dataset, set to train in
    process in about a second (5 epochs, 16 components)."""
    demo_data_generate(users=150, items=80, events=6000, seed=7, days=28)
    recommender = Recommender.objects.get(name="default")
    recommender.algorithm = "lightfm"  # a fresh install's default is auto
    recommender.hyperparameters = {"lightfm": {"epochs": 5, "no_components": 16}}
    recommender.save()
    return recommender
