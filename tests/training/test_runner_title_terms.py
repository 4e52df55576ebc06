"""A LightFM run with ``title_terms`` (issue 15): the items' title words become TF-IDF
weighted ``term:`` features, the artifact keeps their idf, and a new item without
categories is served from its title, next to the items whose titles share its words."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from recommender.artifact_store import local_artifact_path
from recommender.artifacts import load_artifact
from recommender.models import Event, Item, Recommender
from recommender.serving.registry import registry
from training.models import RunStatus, Trigger
from training.runner import training_run_execute_now

pytestmark = pytest.mark.django_db

COLOURS = ("red", "blue", "green")


@pytest.fixture
def colours(artifact_dir) -> Recommender:
    """Three taste groups of 15 items, no categories; an item's title names its group's
    colour. Users view about half of their group's items."""
    rng = np.random.default_rng(5)
    items = [
        Item.objects.create(external_id=f"item-{n}", title=f"{COLOURS[n % 3]} thing {n}")
        for n in range(45)
    ]
    start = timezone.now() - timedelta(days=20)
    events = []
    for u in range(90):
        same = (np.arange(45) % 3) == (u % 3)
        for n in np.flatnonzero(rng.random(45) < np.where(same, 0.5, 0.03)):
            events.append(
                Event(
                    event_id=f"e{len(events)}",
                    user_external_id=f"user-{u}",
                    item=items[n],
                    event_type="view",
                    timestamp=start + timedelta(minutes=int(rng.integers(20 * 24 * 60))),
                )
            )
    Event.objects.bulk_create(events)
    recommender = Recommender.objects.get(name="default")
    recommender.algorithm = "lightfm"
    recommender.hyperparameters = {
        "lightfm": {"epochs": 30, "no_components": 16, "title_terms": 50}
    }
    recommender.save()
    return recommender


def test_title_words_become_features_and_start_a_new_item(colours, make_api_client):
    run = training_run_execute_now(recommender=colours, trigger=Trigger.CLI)
    assert run.status == RunStatus.SUCCEEDED, run.error
    artifact = load_artifact(local_artifact_path(run.version.artifact_uri))
    terms = [n for n in artifact.feature_names["items"] if n.startswith("term:")]
    assert terms == ["term:blue", "term:green", "term:red", "term:thing"]
    assert artifact.arrays["item_term_idf"].shape == (4,)

    Item.objects.create(external_id="newcomer", title="A red newcomer")  # no categories
    registry.refresh()
    response = make_api_client().get("/api/v1/items/newcomer/similar?limit=5")

    assert response.status_code == 200, response.content
    similar = [int(i["item_id"].split("-")[1]) for i in response.json()["items"]]
    assert sum(n % 3 == 0 for n in similar) >= 4  # the red items


def test_without_title_terms_no_word_is_a_feature(colours):
    colours.hyperparameters = {"lightfm": {"epochs": 5, "no_components": 16, "title_terms": 0}}
    colours.save()

    run = training_run_execute_now(recommender=colours, trigger=Trigger.CLI)

    artifact = load_artifact(local_artifact_path(run.version.artifact_uri))
    assert not any(n.startswith("term:") for n in artifact.feature_names["items"])
    assert "item_term_idf" not in artifact.arrays
