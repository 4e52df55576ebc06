"""The model registry: versions, promote / rollback with audit, retention, the serving key."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import IntegrityError, transaction

from recommender.exceptions import (
    ModelVersionNotFound,
    NoRollbackTarget,
    RecommenderNotFound,
    VersionAlreadyActive,
    VersionNotPromotable,
    VersionNotRejectable,
)
from recommender.models import ModelVersion, PromotionEvent, PromotionKind, VersionStatus
from recommender.selectors import (
    active_version_get,
    model_version_get,
    recommender_get,
    rollback_target_get,
)
from recommender.services import (
    model_version_create,
    model_version_promote,
    model_version_reject,
    model_version_rollback,
    model_versions_prune,
)
from recommender.serving.signal import active_version_key
from tests.factories import ModelVersionFactory, RecommenderFactory

pytestmark = pytest.mark.django_db


def _create(recommender, **overrides):
    values = {
        "artifact_uri": "x",
        "artifact_sha256": "a" * 64,
        "artifact_size": 10,
        "metrics": {"precision_at_k": 0.2},
        "hyperparameters": {"family": "lightfm", "no_components": 32},
        "data_window": {},
        "data_stats": {},
    }
    values.update(overrides)
    return model_version_create(recommender=recommender, **values)


def _statuses(recommender) -> dict[int, str]:
    return dict(recommender.versions.values_list("number", "status"))


# --- Records -------------------------------------------------------------------------


def test_the_default_recommender_exists_after_migrating():
    default = recommender_get(name="default")
    assert default.algorithm == "auto"  # a fresh install searches the families
    assert default.tuning_budget_seconds > 0
    assert default.hyperparameters["lightfm"]["loss"] == "warp"  # moved from its column
    assert default.event_weights  # copied from RECSITE_EVENT_TYPES


def test_recommender_get_raises_a_404_domain_error_for_an_unknown_name():
    with pytest.raises(RecommenderNotFound) as exc:
        recommender_get(name="nope")
    assert exc.value.status == 404
    assert exc.value.detail["name"] == "nope"


def test_model_version_get_raises_a_404_domain_error_for_an_unknown_number():
    recommender = RecommenderFactory()
    with pytest.raises(ModelVersionNotFound):
        model_version_get(recommender=recommender, number=7)


def test_versions_are_numbered_per_recommender():
    first, second = RecommenderFactory(), RecommenderFactory()
    assert [_create(first).number for _ in range(3)] == [1, 2, 3]
    assert _create(second).number == 1
    assert _create(first).status == VersionStatus.CANDIDATE


def test_a_new_version_cannot_be_created_active():
    with pytest.raises(ValueError):
        _create(RecommenderFactory(), status=VersionStatus.ACTIVE)


# --- Promote -------------------------------------------------------------------------


def test_promote_retires_the_previous_and_writes_one_audit_row():
    recommender = RecommenderFactory()
    v1, v2 = (
        ModelVersionFactory(recommender=recommender),
        ModelVersionFactory(recommender=recommender),
    )
    model_version_promote(version=v1, actor_label="cli", reason="first")

    event = model_version_promote(version=v2, actor_label="cli", reason="better", kind="auto")

    assert _statuses(recommender) == {1: VersionStatus.RETIRED, 2: VersionStatus.ACTIVE}
    assert (event.from_version, event.to_version, event.kind) == (v1, v2, PromotionKind.AUTO)
    assert event.reason == "better" and event.actor_label == "cli"
    assert PromotionEvent.objects.filter(recommender=recommender, to_version=v2).count() == 1
    assert active_version_get(recommender=recommender) == v2


def test_promote_refuses_a_rejected_version():
    version = ModelVersionFactory(status=VersionStatus.REJECTED)
    with pytest.raises(VersionNotPromotable) as exc:
        model_version_promote(version=version, reason="try")
    assert exc.value.detail["why"] == "rejected"
    assert not PromotionEvent.objects.exists()


def test_promote_refuses_the_version_already_active():
    version = ModelVersionFactory()
    model_version_promote(version=version, reason="first")
    with pytest.raises(VersionAlreadyActive):
        model_version_promote(version=version, reason="again")
    assert PromotionEvent.objects.filter(to_version=version).count() == 1


def test_promote_refuses_a_version_whose_artifact_was_deleted(settings, tmp_path):
    settings.RECSITE_ARTIFACT_DIR = tmp_path
    recommender = RecommenderFactory(versions_kept=1)
    old = ModelVersionFactory(recommender=recommender)
    ModelVersionFactory(recommender=recommender)
    assert model_versions_prune(recommender=recommender) == [old]
    with pytest.raises(VersionNotPromotable):
        model_version_promote(version=old, reason="resurrect")


def test_the_database_refuses_two_active_versions():
    recommender = RecommenderFactory()
    ModelVersionFactory(recommender=recommender, status=VersionStatus.ACTIVE)
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersionFactory(recommender=recommender, status=VersionStatus.ACTIVE)
    # other recommenders each have their own active version
    ModelVersionFactory(status=VersionStatus.ACTIVE)
    assert ModelVersion.objects.filter(status=VersionStatus.ACTIVE).count() == 2


# --- Rollback ------------------------------------------------------------------------


def test_rollback_goes_to_the_previously_active_version_and_audits_it():
    recommender = RecommenderFactory()
    v1, v2, v3 = (ModelVersionFactory(recommender=recommender) for _ in range(3))
    model_version_promote(version=v1, reason="1")
    model_version_promote(version=v2, reason="2")
    # v3 stays a candidate: a rollback goes to what was active, not to the previous number

    event = model_version_rollback(recommender=recommender, actor_label="cli", reason="bad v2")

    assert _statuses(recommender) == {
        1: VersionStatus.ACTIVE,
        2: VersionStatus.RETIRED,
        3: VersionStatus.CANDIDATE,
    }
    assert (event.kind, event.from_version, event.to_version) == ("rollback", v2, v1)
    assert event.reason == "bad v2"
    assert PromotionEvent.objects.filter(kind=PromotionKind.ROLLBACK).count() == 1


def test_a_second_rollback_undoes_the_first():
    recommender = RecommenderFactory()
    v1, v2 = (ModelVersionFactory(recommender=recommender) for _ in range(2))
    model_version_promote(version=v1, reason="1")
    model_version_promote(version=v2, reason="2")
    model_version_rollback(recommender=recommender, reason="back")
    assert rollback_target_get(recommender=recommender) == v2

    model_version_rollback(recommender=recommender, reason="forth")

    assert active_version_get(recommender=recommender) == v2


def test_rollback_without_a_previous_version_raises_no_rollback_target():
    recommender = RecommenderFactory()
    with pytest.raises(NoRollbackTarget):  # nothing active
        model_version_rollback(recommender=recommender, reason="x")
    model_version_promote(version=ModelVersionFactory(recommender=recommender), reason="1")
    with pytest.raises(NoRollbackTarget) as exc:  # the first version ever promoted
        model_version_rollback(recommender=recommender, reason="x")
    assert exc.value.status == 409
    assert exc.value.detail["active_version"] == 1


def test_rollback_refuses_a_target_whose_artifact_was_deleted():
    recommender = RecommenderFactory()
    v1, v2 = (ModelVersionFactory(recommender=recommender) for _ in range(2))
    model_version_promote(version=v1, reason="1")
    model_version_promote(version=v2, reason="2")
    ModelVersion.objects.filter(pk=v1.pk).update(artifact_deleted_at="2024-01-01T00:00:00Z")

    with pytest.raises(NoRollbackTarget) as exc:
        model_version_rollback(recommender=recommender, reason="x")

    assert exc.value.detail["target_version"] == 1
    assert active_version_get(recommender=recommender) == v2


# --- Reject --------------------------------------------------------------------------


def test_reject_marks_a_candidate_with_its_reason():
    version = ModelVersionFactory()
    model_version_reject(version=version, reason="lift below the gate")
    version.refresh_from_db()
    assert (version.status, version.status_reason) == ("rejected", "lift below the gate")


def test_reject_refuses_the_active_version():
    version = ModelVersionFactory()
    model_version_promote(version=version, reason="1")
    with pytest.raises(VersionNotRejectable):
        model_version_reject(version=version, reason="x")


# --- Retention -----------------------------------------------------------------------


def test_retention_keeps_the_newest_the_active_and_the_rollback_target(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.RECSITE_ARTIFACT_DIR = tmp_path
    recommender = RecommenderFactory(versions_kept=2)
    versions = [ModelVersionFactory(recommender=recommender) for _ in range(6)]
    model_version_promote(version=versions[0], reason="1")
    model_version_promote(version=versions[1], reason="2")  # v1 becomes the rollback target

    with django_capture_on_commit_callbacks(execute=True):
        pruned = model_versions_prune(recommender=recommender)

    assert sorted(v.number for v in pruned) == [3, 4]
    existing = {v.number for v in versions if (tmp_path / v.artifact_uri).exists()}
    assert existing == {1, 2, 5, 6}
    deleted = recommender.versions.filter(artifact_deleted_at__isnull=False)
    assert sorted(deleted.values_list("number", flat=True)) == [3, 4]
    assert recommender.versions.count() == 6  # the rows stay for the audit trail
    # nothing more to prune the second time
    assert model_versions_prune(recommender=recommender) == []


def test_retention_deletes_files_only_after_commit(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.RECSITE_ARTIFACT_DIR = tmp_path
    recommender = RecommenderFactory(versions_kept=0)
    version = ModelVersionFactory(recommender=recommender)  # writes its artifact

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        model_versions_prune(recommender=recommender)

    assert (tmp_path / version.artifact_uri).exists()
    assert len(callbacks) == 1


def test_retention_never_deletes_outside_the_artifact_directory(
    settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.RECSITE_ARTIFACT_DIR = tmp_path / "artifacts"
    outside = tmp_path / "precious"
    outside.mkdir()
    recommender = RecommenderFactory(versions_kept=0)
    escaping = ModelVersionFactory(recommender=recommender, artifact_uri="../precious")
    absolute = ModelVersionFactory(recommender=recommender, artifact_uri=f"file://{outside}")
    root = ModelVersionFactory(recommender=recommender, artifact_uri=".")

    with django_capture_on_commit_callbacks(execute=True):
        pruned = model_versions_prune(recommender=recommender)

    assert pruned == []
    assert outside.exists()
    for version in (escaping, absolute, root):
        version.refresh_from_db()
        assert version.artifact_deleted_at is None


def test_retention_uses_the_given_deleter(django_capture_on_commit_callbacks):
    recommender = RecommenderFactory(versions_kept=1)
    old = ModelVersionFactory(recommender=recommender, artifact_uri="s3://bucket/v1")
    ModelVersionFactory(recommender=recommender)
    deleted: list[str] = []

    with django_capture_on_commit_callbacks(execute=True):
        model_versions_prune(recommender=recommender, delete_artifact=deleted.append)

    assert deleted == [old.artifact_uri]


# --- The serving signal --------------------------------------------------------------


def test_promote_and_rollback_bump_the_serving_key_after_commit(
    django_capture_on_commit_callbacks,
):
    recommender = RecommenderFactory()
    v1, v2 = (ModelVersionFactory(recommender=recommender) for _ in range(2))
    key = active_version_key(recommender.pk)
    cache.delete(key)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        model_version_promote(version=v1, reason="1")
    assert len(callbacks) == 1
    assert cache.get(key) is None  # nothing before commit

    with django_capture_on_commit_callbacks(execute=True):
        model_version_promote(version=v2, reason="2")
    after_promote = cache.get(key)
    assert after_promote.startswith("2:")

    with django_capture_on_commit_callbacks(execute=True):
        model_version_rollback(recommender=recommender, reason="back")
    assert cache.get(key).startswith("1:")


def test_a_failed_promote_does_not_bump_the_serving_key(django_capture_on_commit_callbacks):
    version = ModelVersionFactory(status=VersionStatus.REJECTED)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with pytest.raises(VersionNotPromotable):
            model_version_promote(version=version, reason="x")
    assert callbacks == []


def test_the_serving_signal_swallows_cache_errors(monkeypatch, django_capture_on_commit_callbacks):
    def broken(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(cache, "set", broken)
    version = ModelVersionFactory()

    with django_capture_on_commit_callbacks(execute=True):
        model_version_promote(version=version, reason="1")

    version.refresh_from_db()
    assert version.status == VersionStatus.ACTIVE


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_concurrent_promotions_leave_exactly_one_active_version(postgres):
    import threading

    from django.db import connection

    recommender = RecommenderFactory()
    versions = [ModelVersionFactory(recommender=recommender) for _ in range(4)]
    barrier = threading.Barrier(len(versions))
    errors: list[BaseException] = []

    def promote(version) -> None:
        try:
            barrier.wait()
            model_version_promote(version=version, reason="race")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert recommender.versions.filter(status=VersionStatus.ACTIVE).count() == 1
    events = PromotionEvent.objects.filter(recommender=recommender).order_by("id")
    assert events.count() == 4
    # the audit trail is a chain: each promotion starts from the previous one's target
    chain = list(events)
    assert chain[0].from_version is None
    assert all(b.from_version_id == a.to_version_id for a, b in zip(chain, chain[1:], strict=False))
