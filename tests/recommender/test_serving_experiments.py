"""Serving a running experiment (each user their arm's version, sticky, across an
unrelated promotion) and recording what was served (issue 16)."""

import pytest

from recommender.models import Recommender
from recommender.online import recording
from recommender.online.assignment import arm_for
from recommender.online.experiments import TreatmentSpec, experiment_create, experiment_stop
from recommender.online.models import ServedList
from recommender.serving.registry import registry
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec

pytestmark = pytest.mark.django_db

USERS = [f"user-{i}" for i in range(6)]


@pytest.fixture
def versions(artifact_dir):
    spec = default_spec(seed=1)
    create_catalog(spec)
    v1 = create_version(spec)
    v2 = create_version(default_spec(seed=2), promote=False)
    return v1, v2


@pytest.fixture
def experiment(versions):
    started = experiment_create(
        recommender=Recommender.objects.get(name="default"),
        name="v2 against v1",
        treatments=[TreatmentSpec(version=2, share=0.5)],
        salt="fixed-salt",
    )
    registry.refresh()
    return started


def arms() -> list[tuple[str, float]]:
    return [("control", 0.5), ("treatment-1", 0.5)]


def recommend(client, user):
    response = client.get(f"/api/v1/recommendations/{user}?limit=5")
    assert response.status_code == 200, response.content
    return response.json()


def test_each_user_gets_their_arms_version_and_keeps_it(experiment, make_api_client):
    client = make_api_client()
    expected = {user: arm_for("fixed-salt", user, arms()) for user in USERS}
    assert set(expected.values()) == {"control", "treatment-1"}  # both arms are exercised

    for _ in range(2):
        for user in USERS:
            body = recommend(client, user)
            assert body["experiment"] == {"id": experiment.pk, "arm": expected[user]}
            assert body["model_version"] == (1 if expected[user] == "control" else 2)


def test_an_unrelated_promotion_changes_no_arm(experiment, make_api_client):
    client = make_api_client()
    create_version(default_spec(seed=3))  # v3 becomes the active version
    registry.refresh()

    for user in USERS:
        body = recommend(client, user)
        arm = arm_for("fixed-salt", user, arms())
        assert body["experiment"]["arm"] == arm
        assert body["model_version"] == (1 if arm == "control" else 2)


def test_stopping_sends_everyone_back_to_the_active_version(experiment, make_api_client):
    client = make_api_client()
    experiment_stop(experiment=experiment, reason="done")
    registry.refresh()

    for user in USERS:
        body = recommend(client, user)
        assert body["experiment"] is None
        assert body["model_version"] == 1


def test_served_lists_are_recorded_with_their_id_arm_and_items(experiment, make_api_client):
    client = make_api_client()
    body = recommend(client, "user-1")
    similar = client.get(f"/api/v1/items/{body['items'][0]['item_id']}/similar?limit=3").json()

    assert recording.flush() == 2

    served = ServedList.objects.get(id=body["recommendation_id"])
    assert (served.user_external_id, served.arm, served.experiment_id) == (
        "user-1",
        body["experiment"]["arm"],
        experiment.pk,
    )
    assert served.item_ids == [item["item_id"] for item in body["items"]]
    assert served.model_version == body["model_version"]
    assert set(served.sources) == {"model"}
    other = ServedList.objects.get(id=similar["recommendation_id"])
    assert (other.kind, other.user_external_id) == ("similar", "")
    assert other.item_ids == [item["item_id"] for item in similar["items"]]


def test_without_an_experiment_the_response_says_none(versions, make_api_client):
    body = recommend(make_api_client(), "user-1")
    assert body["experiment"] is None and body["model_version"] == 1
