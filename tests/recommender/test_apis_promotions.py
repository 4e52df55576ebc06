"""Promote and roll back over the API: the registry's services, the key as the audited
actor, the registry's error codes; rollback names the version it rolls back from."""

import pytest

from recommender.models import ApiKey, ModelVersion, PromotionEvent, Scope, VersionStatus
from recommender.services import model_version_reject
from tests.recommender.serving_helpers import create_catalog, create_version, default_spec

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions(settings, tmp_path):
    """v1 was active, v2 is active (v1 is its rollback target), v3 is a candidate."""
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    spec = default_spec()
    create_catalog(spec)
    create_version(spec)
    create_version(spec)
    create_version(spec, promote=False)
    return {v.number: v for v in ModelVersion.objects.all()}


@pytest.fixture
def trainer(make_api_client):
    return make_api_client(Scope.TRAINING_WRITE)


def promote(client, number, **body):
    return client.post(f"/api/v1/model-versions/{number}/promote", body, format="json")


def rollback(client, number, **body):
    return client.post(f"/api/v1/model-versions/{number}/rollback", body, format="json")


def active() -> int:
    return ModelVersion.objects.get(status=VersionStatus.ACTIVE).number


def test_promote_makes_the_version_active_and_audits_the_key(versions, trainer):
    events = PromotionEvent.objects.count()
    response = promote(trainer, 3, reason="better on the A/B test")
    assert response.status_code == 201, response.content
    body = response.json()
    key = ApiKey.objects.get()
    assert body["kind"] == "promote"
    assert (body["from_version"], body["to_version"]) == (2, 3)
    assert body["actor_label"] == f"api-key:{key.prefix} (test-client)"
    assert active() == 3
    event = PromotionEvent.objects.order_by("-id").first()
    assert PromotionEvent.objects.count() == events + 1
    assert (event.actor, event.actor_label) == (None, body["actor_label"])
    assert event.reason == "better on the A/B test"


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}, {"reason": "x" * 501}])
def test_a_reason_is_required(versions, trainer, body):
    response = promote(trainer, 3, **body)
    assert response.status_code == 400
    assert "reason" in response.json()["error"]["detail"]
    assert active() == 2


def test_promoting_a_rejected_version_is_409_version_not_promotable(versions, trainer):
    model_version_reject(version=versions[3], reason="leaks the holdout")
    response = promote(trainer, 3, reason="try")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "version_not_promotable"
    assert active() == 2


def test_promoting_the_active_version_is_409(versions, trainer):
    response = promote(trainer, 2, reason="again")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "version_already_active"


@pytest.mark.parametrize(
    ("number", "body", "code"),
    [
        (9, {}, "model_version_not_found"),
        (3, {"recommender": "nope"}, "recommender_not_found"),
    ],
)
def test_unknown_versions_and_recommenders_are_404(versions, trainer, number, body, code):
    for call in (promote, rollback):
        response = call(trainer, number, reason="why", **body)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == code


def test_rollback_from_the_active_version_restores_the_previous_one(versions, trainer):
    response = rollback(trainer, 2, reason="error rate up")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["kind"], body["from_version"], body["to_version"]) == ("rollback", 2, 1)
    assert body["actor_label"].startswith("api-key:")
    assert active() == 1


def test_a_repeated_rollback_is_409_and_does_not_undo_the_first(versions, trainer):
    """Without the number, the second call would roll back from v1 to v2 again."""
    assert rollback(trainer, 2, reason="error rate up").status_code == 201
    events = PromotionEvent.objects.count()
    response = rollback(trainer, 2, reason="error rate up (retried)")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "version_not_active"
    assert error["detail"] == {"version": 2, "active_version": 1}
    assert active() == 1
    assert PromotionEvent.objects.count() == events


def test_rollback_from_a_version_that_is_not_active_is_409(versions, trainer):
    response = rollback(trainer, 3, reason="wrong one")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "version_not_active"
    assert active() == 2


def test_rollback_without_a_target_is_409_no_rollback_target(versions, trainer):
    create_version(default_spec(), recommender="solo")
    response = rollback(trainer, 1, recommender="solo", reason="v1 was the first one promoted")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_rollback_target"


@pytest.mark.parametrize("scope", [Scope.RECOMMENDATIONS_READ, Scope.EVENTS_WRITE])
def test_promote_and_rollback_need_the_training_scope(versions, make_api_client, scope):
    client = make_api_client(scope)
    assert promote(client, 3, reason="x").status_code == 403
    assert rollback(client, 2, reason="x").status_code == 403
    assert active() == 2
