"""The model registry: versions, the active pointer, promote / rollback and retention.

Every change of the active pointer locks the recommender row first, so promotions,
rollbacks and version numbering of one recommender are serialized (the partial unique
constraint ``model_version_one_active`` backs this up in the database). Each change
writes one ``PromotionEvent`` in the same transaction and bumps the serving key only
after commit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from recommender.artifact_store import (
    artifact_delete,
    artifact_load,
    artifact_name,
    artifact_store_check,
)
from recommender.artifacts import ArtifactError
from recommender.exceptions import (
    ArtifactStoreUnavailable,
    NoRollbackTarget,
    VersionAlreadyActive,
    VersionNotActive,
    VersionNotPromotable,
    VersionNotRejectable,
)
from recommender.models import (
    ModelVersion,
    PromotionEvent,
    PromotionKind,
    Recommender,
    VersionStatus,
)
from recommender.selectors import active_version_get, rollback_target_get
from recommender.serving.signal import active_version_changed

logger = logging.getLogger(__name__)


def _lock_recommender(recommender_id: int) -> Recommender:
    return Recommender.objects.select_for_update().get(pk=recommender_id)


@transaction.atomic
def model_version_create(
    *,
    recommender: Recommender,
    artifact_uri: str,
    artifact_sha256: str,
    artifact_size: int,
    metrics: dict[str, Any],
    hyperparameters: dict[str, Any],
    data_window: dict[str, Any],
    data_stats: dict[str, Any],
    status: str = VersionStatus.CANDIDATE,
) -> ModelVersion:
    """Record a complete artifact as the recommender's next version (1, 2, 3...).

    Only ``candidate`` or ``rejected``: a version becomes active through
    ``model_version_promote`` alone, so every activation has its audit row."""
    if status not in (VersionStatus.CANDIDATE, VersionStatus.REJECTED):
        raise ValueError(f"a new version is a candidate or rejected, not {status!r}")
    locked = _lock_recommender(recommender.pk)
    last = locked.versions.aggregate(last=Max("number"))["last"] or 0
    return ModelVersion.objects.create(
        recommender=locked,
        number=last + 1,
        status=status,
        artifact_uri=artifact_uri,
        artifact_sha256=artifact_sha256,
        artifact_size=artifact_size,
        metrics=metrics,
        hyperparameters=hyperparameters,
        data_window=data_window,
        data_stats=data_stats,
    )


def _activate(
    *,
    recommender: Recommender,
    version: ModelVersion,
    previous: ModelVersion | None,
    kind: str,
    actor: AbstractBaseUser | None,
    actor_label: str,
    reason: str,
) -> PromotionEvent:
    """Retire ``previous``, activate ``version``, audit, and signal serving after commit.
    The caller holds the recommender lock."""
    if previous is not None:
        previous.status = VersionStatus.RETIRED
        previous.save(update_fields=["status"])
    version.status = VersionStatus.ACTIVE
    version.save(update_fields=["status"])
    event = PromotionEvent.objects.create(
        recommender=recommender,
        from_version=previous,
        to_version=version,
        kind=kind,
        actor=actor,
        actor_label=actor_label,
        reason=reason,
    )
    transaction.on_commit(
        partial(active_version_changed, recommender.pk, version_number=version.number)
    )
    return event


def _artifact_verify(version: ModelVersion) -> None:
    """Refuse a version whose artifact would not load: what serving checks before a swap
    (every file's size and sha256, paths, dtypes and shapes, the manifest's sha256 against
    the row), minus the test prediction, fetched from the store as a serving host would
    (into this host's cache). Serving checks again: this is the early, clear refusal,
    not the last line. A store that does not answer refuses too (503): no host could
    fetch the version."""
    try:
        # This host's verified copy (every check, each damage reported as what it is),
        # then that the store still holds it: a copy cached here proves nothing about
        # the other hosts.
        artifact_load(uri=version.artifact_uri, sha256=version.artifact_sha256)
        artifact_store_check(uri=version.artifact_uri, sha256=version.artifact_sha256, verify=False)
    except ArtifactError as exc:
        raise VersionNotPromotable(
            f"The artifact of version {version.number} fails verification ({exc.code}: "
            f"{exc}); it is not made active.",
            version=version.number,
            why="artifact_invalid",
            artifact_error=exc.code,
        ) from exc
    except ArtifactStoreUnavailable as exc:
        raise ArtifactStoreUnavailable(
            f"Version {version.number} is not made active: {exc.message} No host could fetch it.",
            version=version.number,
            **(exc.detail or {}),
        ) from exc
    except ValueError as exc:
        raise VersionNotPromotable(
            f"The artifact of version {version.number} is not in the artifact store ({exc}).",
            version=version.number,
            why="artifact_invalid",
            artifact_error="not_local",
        ) from exc


def model_version_promote(
    *,
    version: ModelVersion,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    reason: str,
    kind: str = PromotionKind.PROMOTE,
    artifact_verified: bool = False,
) -> PromotionEvent:
    """Make ``version`` the active one; the previously active one is retired and becomes
    the rollback target.

    The artifact is verified (every file hashed) before the recommender's row lock is
    taken, so checking a multi-GB artifact never holds up the recommender's other writers;
    retention marks a version deleted under that lock, which the locked part re-checks.
    ``artifact_verified``: the caller has just written the artifact and hashed what it
    wrote (the training run's auto-promotion), so it is not hashed a second time; serving
    still verifies it before any swap."""
    if kind not in (PromotionKind.PROMOTE, PromotionKind.AUTO):
        raise ValueError(f"promote records kind 'promote' or 'auto', not {kind!r}")
    if not artifact_verified:
        _artifact_verify(version)
    return _promote_locked(
        version=version, actor=actor, actor_label=actor_label, reason=reason, kind=kind
    )


@transaction.atomic
def _promote_locked(
    *,
    version: ModelVersion,
    actor: AbstractBaseUser | None,
    actor_label: str,
    reason: str,
    kind: str,
) -> PromotionEvent:
    recommender = _lock_recommender(version.recommender_id)
    version.refresh_from_db(fields=["status", "artifact_deleted_at"])
    if version.status == VersionStatus.REJECTED:
        raise VersionNotPromotable(
            f"Version {version.number} was rejected ({version.status_reason or 'by its gates'}) "
            "and cannot be promoted.",
            version=version.number,
            why="rejected",
        )
    if version.artifact_deleted_at is not None:
        raise VersionNotPromotable(
            f"The artifact of version {version.number} was deleted by retention.",
            version=version.number,
            why="artifact_deleted",
        )
    if version.status == VersionStatus.ACTIVE:
        raise VersionAlreadyActive(
            f"Version {version.number} is already active.", version=version.number
        )
    previous = active_version_get(recommender=recommender)
    return _activate(
        recommender=recommender,
        version=version,
        previous=previous,
        kind=kind,
        actor=actor,
        actor_label=actor_label,
        reason=reason,
    )


def model_version_rollback(
    *,
    recommender: Recommender,
    actor: AbstractBaseUser | None = None,
    actor_label: str = "",
    reason: str,
    from_number: int | None = None,
) -> PromotionEvent:
    """Make the version that was active before the current one active again
    (see ``rollback_target_get``).

    ``from_number``, when given, is the version the caller means to roll back from: if
    it is not the active one when the lock is held, ``VersionNotActive`` and nothing
    changes. Two callers reacting to the same bad version thus roll back once; without
    it the second rollback would undo the first (the target of a rollback is the
    version it replaced).

    The target's artifact is verified before the lock (as for promote); should another
    writer change the target meanwhile, the new target is verified under the lock."""
    target = rollback_target_get(recommender=recommender)
    if target is not None and target.artifact_deleted_at is None:
        _artifact_verify(target)
    return _rollback_locked(
        recommender=recommender,
        actor=actor,
        actor_label=actor_label,
        reason=reason,
        from_number=from_number,
        verified_pk=target.pk if target is not None else None,
    )


@transaction.atomic
def _rollback_locked(
    *,
    recommender: Recommender,
    actor: AbstractBaseUser | None,
    actor_label: str,
    reason: str,
    from_number: int | None,
    verified_pk: int | None,
) -> PromotionEvent:
    recommender = _lock_recommender(recommender.pk)
    current = active_version_get(recommender=recommender)
    if from_number is not None and (current is None or current.number != from_number):
        raise VersionNotActive(
            f"Version {from_number} is not the active version of {recommender.name!r} "
            f"(active: {f'v{current.number}' if current else 'none'}); nothing was rolled back.",
            version=from_number,
            active_version=current.number if current else None,
        )
    if current is None:
        raise NoRollbackTarget(
            f"Recommender {recommender.name!r} has no active version to roll back from.",
            recommender=recommender.name,
        )
    target = rollback_target_get(recommender=recommender)
    if target is None:
        raise NoRollbackTarget(
            f"Version {current.number} is the first version of {recommender.name!r} to be "
            "active; there is nothing to roll back to.",
            recommender=recommender.name,
            active_version=current.number,
        )
    if target.artifact_deleted_at is not None:
        raise NoRollbackTarget(
            f"The rollback target, version {target.number}, had its artifact deleted.",
            recommender=recommender.name,
            active_version=current.number,
            target_version=target.number,
        )
    if target.status == VersionStatus.REJECTED:
        raise NoRollbackTarget(
            f"The rollback target, version {target.number}, was rejected.",
            recommender=recommender.name,
            active_version=current.number,
            target_version=target.number,
        )
    if target.pk != verified_pk:  # changed since the check before the lock
        _artifact_verify(target)
    return _activate(
        recommender=recommender,
        version=target,
        previous=current,
        kind=PromotionKind.ROLLBACK,
        actor=actor,
        actor_label=actor_label,
        reason=reason,
    )


@transaction.atomic
def model_version_reject(*, version: ModelVersion, reason: str) -> ModelVersion:
    """Mark a candidate (or retired) version as never to be promoted."""
    _lock_recommender(version.recommender_id)
    version.refresh_from_db(fields=["status"])
    if version.status == VersionStatus.ACTIVE:
        raise VersionNotRejectable(
            f"Version {version.number} is active; promote or roll back to another first.",
            version=version.number,
        )
    version.status = VersionStatus.REJECTED
    version.status_reason = reason
    version.save(update_fields=["status", "status_reason"])
    return version


# --- Retention -----------------------------------------------------------------------


@transaction.atomic
def model_versions_prune(
    *,
    recommender: Recommender,
    delete_artifact: Callable[[str], None] | None = None,
) -> list[ModelVersion]:
    """Delete the artifacts of all but the newest ``versions_kept`` versions, never the
    active version's nor the rollback target's. The rows stay, with ``artifact_deleted_at``
    set; the files are deleted after commit (a failed deletion leaves files behind, never
    a row pointing at a missing artifact it claims to have).

    ``delete_artifact`` deletes one artifact by URI; the default deletes it from the
    artifact store, which refuses a URI it cannot hold (a path outside the directory of
    a file store: such a version is logged and left alone)."""
    recommender = _lock_recommender(recommender.pk)
    deleter = delete_artifact or artifact_delete
    protected = {
        v.pk
        for v in (
            active_version_get(recommender=recommender),
            rollback_target_get(recommender=recommender),
        )
        if v is not None
    }
    older = (
        recommender.versions.filter(artifact_deleted_at__isnull=True)
        .order_by("-number")
        .exclude(pk__in=protected)
    )
    kept_numbers = set(
        recommender.versions.order_by("-number").values_list("number", flat=True)[
            : recommender.versions_kept
        ]
    )
    now = timezone.now()
    pruned: list[ModelVersion] = []
    for version in older.select_for_update():
        if version.number in kept_numbers:
            continue
        if delete_artifact is None:
            try:
                artifact_name(version.artifact_uri)
            except ValueError as exc:
                logger.error("retention: not deleting the artifact of %s: %s", version, exc)
                continue
        version.artifact_deleted_at = now
        version.save(update_fields=["artifact_deleted_at"])
        # A named callable, not functools.partial: Django's robust on_commit logs a
        # failure by the callback's __qualname__, which a partial lacks.
        transaction.on_commit(lambda uri=version.artifact_uri: deleter(uri), robust=True)
        pruned.append(version)
    return pruned
