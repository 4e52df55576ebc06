"""Fixtures shared by the training tests: a small generated dataset, in process or for
tests that run a real Celery worker."""

from __future__ import annotations

import pytest

from recommender.models import Item, ModelVersion, Recommender
from recommender.services import demo_data_generate
from recsite.celery import app
from tests.factories import EventFactory
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec
from training import tasks  # noqa: F401  (registered, as a worker's autodiscovery does)


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


@pytest.fixture
def eager_tasks():
    """Tasks run in the process that sends them (``CELERY_TASK_ALWAYS_EAGER``)."""
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def export_version() -> ModelVersion:
    """An active version over the serving spec, and three users with events to export."""
    spec = default_spec()
    create_catalog(spec)
    version = create_version(spec)
    for n, user in enumerate(["user-0", "user-1", "stranger"]):
        EventFactory(
            event_id=f"e{n}", user_external_id=user, item=Item.objects.get(external_id="item-4")
        )
    return version
